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
 * - an outage that starts after the moment the window closed does not reopen it (one starting in that very second
 *   does: the sequencer was not up at the close).
 *
 * @dev The feed's history is read forwards, from the round that was the latest when the batch settled (stored with
 * the batch), until the first stretch in which the window closes. Rounds that come later cannot change that answer,
 * so a window that closed stays closed however many status changes follow (reading backwards from the latest round
 * could not promise that: the round that proved the close falls out of reach). At most MAX_ROUNDS rounds are read;
 * when the history that matters is unavailable (a round that reverts, has `startedAt == 0`, an answer other than 0
 * or 1, timestamps going backwards) or longer than that, the answer is NEVER: payers never lose dispute time to a
 * broken feed, and governance can remove the feed to let the windows close at `releaseAt`.
 */
library SequencerWindow {
    /// @notice "The window cannot close (yet)": the sequencer is down, or its history is unknown.
    uint256 internal constant NEVER = type(uint256).max;
    /// @notice Rounds read at most per call.
    uint256 internal constant MAX_ROUNDS = 64;
    /// @notice Stored instead of a round id when the feed did not answer at settlement: the history is unknown.
    uint80 internal constant UNKNOWN_ROUND = type(uint80).max;

    /**
     * @notice When the window `[settledAt, releaseAt)` closes given the sequencer's history (see the rule above),
     * reading the feed from `startRound` (a round that started at or before `settledAt`).
     * @return A timestamp >= `releaseAt`, or NEVER.
     */
    function closesAt(
        AggregatorV3Interface feed,
        uint256 grace,
        uint256 settledAt,
        uint256 releaseAt,
        uint80 startRound
    ) internal view returns (uint256) {
        if (startRound == 0 || startRound == UNKNOWN_ROUND) return NEVER;
        (bool ok, uint80 latestId,,) = latest(feed);
        if (!ok || startRound > latestId) return NEVER;
        uint80 id = startRound;
        int256 answer;
        uint256 startedAt;
        (ok, answer, startedAt) = _round(feed, id);
        for (uint256 k; k < MAX_ROUNDS; ++k) {
            if (!ok || startedAt == 0 || (answer != 0 && answer != 1)) return NEVER;
            uint256 next = NEVER; // start of the next round (NEVER: this is the latest)
            uint80 nextId;
            int256 nextAnswer;
            uint256 nextStartedAt;
            if (id != latestId) {
                (ok, nextId, nextAnswer, nextStartedAt) = _next(feed, id, latestId);
                if (!ok || nextStartedAt < startedAt) return NEVER;
                next = nextStartedAt;
            }
            if (answer == 0) {
                // Up during [startedAt, next): the earliest close in this stretch, valid if the stretch lasts.
                uint256 candidate = releaseAt;
                if (startedAt > settledAt && startedAt + grace > releaseAt) candidate = startedAt + grace;
                if (candidate < next) return candidate;
            }
            if (next == NEVER) return NEVER; // down now
            (id, answer, startedAt) = (nextId, nextAnswer, nextStartedAt);
        }
        return NEVER;
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

    /// @dev The round after `id`: `id + 1`, or the first round of the next phase of a proxy (phase in bits 64+).
    function _next(AggregatorV3Interface feed, uint80 id, uint80 latestId)
        private
        view
        returns (bool ok, uint80 nextId, int256 answer, uint256 startedAt)
    {
        nextId = id + 1;
        (ok, answer, startedAt) = _round(feed, nextId);
        if (ok && startedAt != 0) return (ok, nextId, answer, startedAt);
        nextId = uint80((((uint256(id) >> 64) + 1) << 64) | 1);
        if (nextId > latestId) return (false, nextId, 0, 0);
        (ok, answer, startedAt) = _round(feed, nextId);
        ok = ok && startedAt != 0;
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
