// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IDisputeWindow
 * @notice The one view of the settlement contract (`AutoPayLLM`) that governance depends on: how long payers may
 * dispute a settled batch, and how long a sequencer outage can keep that window open after it ends.
 */
interface IDisputeWindow {
    /// @notice Seconds a batch settled now stays open to disputes.
    function disputeWindow() external view returns (uint64);

    /// @notice Seconds a window stays open after an L2 sequencer outage that overlapped it ended (0: no feed).
    function sequencerGracePeriod() external view returns (uint64);
}
