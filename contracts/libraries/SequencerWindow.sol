// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/**
 * @title SequencerWindow
 * @notice Reads a Chainlink L2 sequencer-uptime feed (answer 0: up, 1: down; `startedAt`: when the status last
 * changed; a new round only when the status changes) and extends a dispute window over sequencer outages.
 *
 * The rule ({closesAt}): a window `[settledAt, releaseAt)` closes at the first time `t >= releaseAt` at which the
 * sequencer is up and has been up since `max(settledAt, t - grace)`. So:
 * - no outage touched the window: it closes at `releaseAt`;
 * - an outage overlapped it: it cannot close while the sequencer is down, and closes no earlier than
 *   `grace` after the sequencer came back up (a new outage within that grace extends it again);
 * - an outage that starts at or after the moment the window closed does not reopen it.
 *
 * @dev The feed's history is walked backwards from the latest round, at most MAX_ROUNDS rounds, and only as far as
 * rounds that started after `releaseAt` (earlier history cannot change the answer). When history that matters is
 * unavailable (a round that reverts, has `startedAt == 0`, an answer other than 0 or 1, or timestamps going
 * backwards) or beyond MAX_ROUNDS, the answer is the earliest close found in the history that was read, or
 * NEVER: never earlier than the exact rule, so payers never lose dispute time to a broken or phase-changed feed.
 */
library SequencerWindow {
    /// @notice "The window cannot close (yet)": the sequencer is down, or its history is unknown.
    uint256 internal constant NEVER = type(uint256).max;
    /// @notice Rounds read at most per call (the latest included).
    uint256 internal constant MAX_ROUNDS = 8;

    /**
     * @notice When the window `[settledAt, releaseAt)` closes given the sequencer's history (see the rule above).
     * @return closes A timestamp >= `releaseAt`, or NEVER.
     */
    function closesAt(AggregatorV3Interface feed, uint256 grace, uint256 settledAt, uint256 releaseAt)
        internal
        view
        returns (uint256 closes)
    {
        closes = NEVER;
        uint256 next = NEVER; // start of the round after the one being read (NEVER: it is the latest)
        (bool ok, uint80 roundId, int256 answer, uint256 startedAt) = latest(feed);
        for (uint256 k; k < MAX_ROUNDS; ++k) {
            if (!ok || startedAt == 0 || startedAt > next || startedAt > type(uint64).max) break;
            if (answer == 0) {
                // Up during [startedAt, next): the earliest close in this stretch, valid if the stretch lasts.
                uint256 candidate = releaseAt;
                if (startedAt > settledAt && startedAt + grace > releaseAt) candidate = startedAt + grace;
                if (candidate < next) closes = candidate;
            } else if (answer != 1) {
                break;
            }
            // Stretches before this round end at startedAt <= releaseAt <= any candidate: none can be valid.
            if (startedAt <= releaseAt || roundId == 0) return closes;
            next = startedAt;
            --roundId;
            (ok, answer, startedAt) = _round(feed, roundId);
        }
    }

    /**
     * @notice The feed's latest round; `ok` is false when the call reverted or the round is not a valid status
     * (answer other than 0 or 1, or `startedAt == 0`: an uninitialised Arbitrum feed).
     */
    function latest(AggregatorV3Interface feed)
        internal
        view
        returns (bool ok, uint80 roundId, int256 answer, uint256 startedAt)
    {
        try feed.latestRoundData() returns (uint80 id, int256 value, uint256 started, uint256, uint80) {
            return ((value == 0 || value == 1) && started != 0, id, value, started);
        } catch {
            return (false, 0, 0, 0);
        }
    }

    function _round(AggregatorV3Interface feed, uint80 roundId)
        private
        view
        returns (bool ok, int256 answer, uint256 startedAt)
    {
        try feed.getRoundData(roundId) returns (uint80, int256 value, uint256 started, uint256, uint80) {
            return (true, value, started);
        } catch {
            return (false, 0, 0);
        }
    }
}
