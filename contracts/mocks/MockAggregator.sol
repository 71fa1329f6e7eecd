// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/**
 * @notice A feed whose every field a test sets, for what `MockV3Aggregator` cannot express: an answer computed in an
 * earlier round (`answeredInRound < roundId`), a reverting `latestRoundData` or `getRoundData`.
 */
contract MockAggregator is AggregatorV3Interface {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
        uint80 answeredInRound;
    }

    uint8 public decimals;
    uint80 public latestRoundId;
    bool public revertLatest;
    bool public revertHistory;
    mapping(uint80 roundId => Round) private _rounds;

    error MockAggregatorReverted();

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    /// @notice Records round `roundId` and makes it the latest.
    function setRound(uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
        external
    {
        _rounds[roundId] = Round(answer, startedAt, updatedAt, answeredInRound);
        latestRoundId = roundId;
    }

    /// @notice Makes `latestRoundData` and/or `getRoundData` revert.
    function setReverts(bool latest, bool history) external {
        revertLatest = latest;
        revertHistory = history;
    }

    function getRoundData(uint80 roundId) external view returns (uint80, int256, uint256, uint256, uint80) {
        if (revertHistory) revert MockAggregatorReverted();
        Round memory r = _rounds[roundId];
        return (roundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        if (revertLatest) revert MockAggregatorReverted();
        Round memory r = _rounds[latestRoundId];
        return (latestRoundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound);
    }

    function description() external pure returns (string memory) {
        return "MockAggregator";
    }

    function version() external pure returns (uint256) {
        return 1;
    }
}
