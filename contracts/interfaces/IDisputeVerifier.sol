// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IDisputeVerifier
 * @notice What `AutoPayLLM` calls when a dispute opens, so that the verification starts without anybody having to
 * ask (the `UsageOracle`). Anyone may call it again later: a dispute never waits on one party.
 */
interface IDisputeVerifier {
    /// @notice Starts (or retries) the verification of dispute `disputeId`; returns the request's id.
    function requestVerification(bytes32 disputeId) external returns (bytes32 requestId);
}
