// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/**
 * @notice A sequencer-uptime feed whose history a test writes round by round, with any round ids (a proxy's phase
 * in bits 64 and up), rounds that revert when read, and a `latestRoundData` that reverts. An unknown round answers
 * zeros (`startedAt == 0`), as an aggregator that has no such round.
 */
contract HistoryFeed is AggregatorV3Interface {
    struct Round {
        int256 answer;
        uint256 startedAt;
        bool reverts;
    }

    uint80 public latestId;
    bool public revertLatest;
    mapping(uint80 roundId => Round) private _rounds;

    error HistoryFeedReverted(uint80 roundId);

    /// @notice Records round `roundId` (status `answer` since `startedAt`) and makes it the latest.
    function push(uint80 roundId, int256 answer, uint256 startedAt) external {
        _rounds[roundId] = Round(answer, startedAt, false);
        latestId = roundId;
    }

    /// @notice Makes reading round `roundId` revert (or not).
    function setReverts(uint80 roundId, bool reverts) external {
        _rounds[roundId].reverts = reverts;
    }

    function setRevertLatest(bool reverts) external {
        revertLatest = reverts;
    }

    function getRoundData(uint80 roundId) public view returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = _rounds[roundId];
        if (r.reverts) revert HistoryFeedReverted(roundId);
        return (roundId, r.answer, r.startedAt, r.startedAt, roundId);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        if (revertLatest) revert HistoryFeedReverted(latestId);
        Round memory r = _rounds[latestId];
        return (latestId, r.answer, r.startedAt, r.startedAt, latestId);
    }

    function decimals() external pure returns (uint8) {
        return 0;
    }

    function description() external pure returns (string memory) {
        return "HistoryFeed";
    }

    function version() external pure returns (uint256) {
        return 1;
    }
}
