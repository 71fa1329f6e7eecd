// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IDisputeWindow
 * @notice The one view of the settlement contract (`AutoPayLLM`) that governance depends on: how long payers may
 * dispute a settled batch.
 */
interface IDisputeWindow {
    /// @notice Seconds a batch settled now stays open to disputes.
    function disputeWindow() external view returns (uint64);
}
