// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {SequencerWindow} from "../../contracts/libraries/SequencerWindow.sol";
import {ChainlinkMockV3Aggregator} from "../../contracts/mocks/ChainlinkMockV3Aggregator.sol";
import {HistoryFeed} from "./utils/HistoryFeed.sol";
import {ReferenceSequencerWindow} from "./utils/ReferenceSequencerWindow.sol";
import {TestBase} from "./utils/TestBase.sol";

/**
 * @notice SequencerWindow.closesAt against the rule written out (ReferenceSequencerWindow), on random histories,
 * read forward from the round that was the latest at settlement; and the issue #12 property P4: a closed window
 * stays closed however many status changes follow (the old backward walk read at most 8 rounds back from the
 * latest, so after 8 changes the round that proved the close fell out of reach and the window opened again).
 */
contract SequencerWindowTest is TestBase {
    uint256 internal constant SETTLED_AT = 1_000_000;
    uint256 internal constant NEVER = type(uint256).max;

    HistoryFeed internal feed;
    // The history as written to `feed`, from its first round (index i is round ids[i]).
    uint80[] internal ids;
    bool[] internal downs;
    uint256[] internal starts;

    function setUp() public {
        feed = new HistoryFeed();
    }

    // ================================================================ fuzz

    /// @notice Histories of up to 7 rounds read from the first: the library gives the rule's exact answer.
    function testFuzz_closesAtMatchesTheRule(uint256 seed, uint8 changes, uint64 window, uint64 grace, bool firstDown)
        public
    {
        uint256 n = 1 + bound(changes, 0, 6);
        window = uint64(bound(window, 60, 400));
        grace = uint64(bound(grace, 0, 300));
        uint256 releaseAt = SETTLED_AT + window;
        bool[] memory down = new bool[](n);
        uint256[] memory at = new uint256[](n);
        ChainlinkMockV3Aggregator mock = new ChainlinkMockV3Aggregator(0, 0);
        uint256 t = SETTLED_AT - bound(uint256(keccak256(abi.encode(seed, "t0"))), 0, 200);
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 250);
            down[i] = (i % 2 == 0) == firstDown;
            at[i] = t;
            mock.updateRoundData(uint80(i + 1), down[i] ? int256(1) : int256(0), t, t);
        }
        uint256 expected = ReferenceSequencerWindow.closesAt(down, at, grace, SETTLED_AT, releaseAt);
        uint256 actual = SequencerWindow.closesAt(AggregatorV3Interface(address(mock)), grace, SETTLED_AT, releaseAt, 1);
        assertEq(actual, expected, "closesAt");
        assertTrue(actual >= releaseAt, "never before releaseAt");
    }

    /**
     * @notice Up to 10 rounds before settlement (never read) and up to 40 after: reading forward from the round
     * that was the latest at settlement gives the rule's answer over the history from that round on.
     */
    function testFuzz_readsFromTheSettlementRound(
        uint256 seed,
        uint8 before,
        uint8 afterward,
        uint64 window,
        uint64 grace
    ) public {
        uint256 b = 1 + bound(before, 0, 9);
        uint256 a = bound(afterward, 0, 40);
        window = uint64(bound(window, 60, 3600));
        grace = uint64(bound(grace, 0, 600));
        uint256 releaseAt = SETTLED_AT + window;
        uint256 t = SETTLED_AT - 50 * b - 1;
        for (uint256 i = 0; i < b + a; i++) {
            if (i == b) t = SETTLED_AT; // the first change after settlement
            t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 49);
            // A real uptime feed records a round only when the status changes: statuses alternate.
            _push(uint80(i + 1), (i + seed % 2) % 2 == 0, t);
        }
        uint80 startRound = uint80(b); // started at or before SETTLED_AT; the next one after it
        uint256 expected = _reference(b - 1, grace, releaseAt);
        uint256 actual = _closesAt(grace, releaseAt, startRound);
        assertEq(actual, expected, "closesAt from the settlement round");
    }

    /**
     * @notice Rounds that repeat a status (which a real uptime feed does not record, but a proxy's new phase may
     * start with): the walk then takes the later round's start as the start of the stretch, so its answer may be
     * later than the rule's, never earlier.
     */
    function testFuzz_repeatedStatusNeverClosesEarlier(uint256 seed, uint8 changes, uint64 grace) public {
        uint256 n = 1 + bound(changes, 0, 30);
        grace = uint64(bound(grace, 0, 600));
        uint256 releaseAt = SETTLED_AT + 300;
        uint256 t = SETTLED_AT - 20;
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 49);
            _push(uint80(i + 1), uint256(keccak256(abi.encode(seed, "down", i))) % 3 == 0, t);
        }
        uint256 expected = _reference(0, grace, releaseAt);
        assertTrue(_closesAt(grace, releaseAt, 1) >= expected, "not earlier than the rule");
    }

    /**
     * @notice P4: once the window closed, up to 100 further status changes (beyond MAX_ROUNDS) never move the
     * answer: the walk stops at the stretch that proves the close.
     */
    function testFuzz_closedWindowStaysClosed(uint256 seed, uint8 outages, uint8 changes, uint64 grace) public {
        grace = uint64(bound(grace, 0, 600));
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 100);
        // Some outages inside the window.
        uint256 t = SETTLED_AT;
        uint256 o = bound(outages, 0, 5);
        for (uint256 i = 0; i < o; i++) {
            t += bound(uint256(keccak256(abi.encode(seed, "o", i))), 1, 500);
            _push(uint80(ids.length + 1), true, t);
            t += bound(uint256(keccak256(abi.encode(seed, "u", i))), 1, 500);
            _push(uint80(ids.length + 1), false, t);
        }
        uint256 closed = _closesAt(grace, releaseAt, 1);
        assertTrue(closed != NEVER && closed >= releaseAt, "closes");
        assertEq(closed, _reference(0, grace, releaseAt), "the rule");
        // After the close, any number of status changes. (A change in the very second of the close would mean the
        // sequencer was down at that second: the window would not have closed then.)
        t = closed + 1;
        uint256 n = bound(changes, 1, 100);
        for (uint256 i = 0; i < n; i++) {
            _push(uint80(ids.length + 1), i % 2 == 0, t);
            t += bound(uint256(keccak256(abi.encode(seed, "c", i))), 0, 300);
        }
        assertEq(_closesAt(grace, releaseAt, 1), closed, "a closed window stays closed");
    }

    /// @notice Whatever round of the history is unreadable, the answer is never earlier than the rule's.
    function testFuzz_unknownHistoryNeverClosesEarlier(uint256 seed, uint8 changes, uint8 hole, uint64 grace) public {
        uint256 n = 1 + bound(changes, 0, 11);
        grace = uint64(bound(grace, 0, 300));
        uint256 releaseAt = SETTLED_AT + 120;
        uint256 t = SETTLED_AT - 50;
        uint256 missing = bound(hole, 0, n); // round `missing` reverts (0: none)
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 90);
            _push(uint80(i + 1), i % 2 == 1, t);
        }
        if (missing != 0) feed.setReverts(uint80(missing), true);
        uint256 expected = _reference(0, grace, releaseAt);
        uint256 actual = _closesAt(grace, releaseAt, 1);
        assertTrue(actual >= expected, "not earlier than the rule");
    }

    // ================================================================ P4

    /// @notice No outage: the window closes at releaseAt, and 20 status changes after that do not reopen it.
    function test_closedWindowStaysClosedAfterTwentyChanges() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 1 days);
        assertEq(_closesAt(1800, releaseAt, 1), releaseAt, "closes at releaseAt");
        for (uint256 i = 0; i < 20; i++) {
            _push(uint80(i + 2), i % 2 == 0, releaseAt + 1 + 60 * i);
            assertEq(_closesAt(1800, releaseAt, 1), releaseAt, "still closed at releaseAt");
        }
    }

    /// @notice An outage in the window: it closes a grace period after the sequencer came back; 20 later changes
    /// (ten more outages) leave that answer alone.
    function test_closedAfterOutageStaysClosedAfterTwentyChanges() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        uint256 grace = 1800;
        _push(1, false, SETTLED_AT - 1 days);
        _push(2, true, SETTLED_AT + 3000);
        _push(3, false, SETTLED_AT + 4000);
        uint256 closes = SETTLED_AT + 4000 + grace;
        assertEq(_closesAt(grace, releaseAt, 1), closes, "grace after the outage");
        assertEq(_reference(0, grace, releaseAt), closes, "the rule agrees");
        for (uint256 i = 0; i < 20; i++) {
            _push(uint80(i + 4), i % 2 == 0, closes + 1 + 10 * i);
            assertEq(_closesAt(grace, releaseAt, 1), closes, "still closed");
        }
    }

    /// @notice Status changes while the window is still open do move it (down now: NEVER; back up: up + grace).
    function test_openWindowFollowsTheSequencer() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 10);
        _push(2, true, SETTLED_AT + 100);
        assertEq(_closesAt(600, releaseAt, 1), NEVER, "down now");
        _push(3, false, SETTLED_AT + 200);
        assertEq(_closesAt(600, releaseAt, 1), releaseAt, "back up long before releaseAt");
        _push(4, true, releaseAt - 100);
        _push(5, false, releaseAt + 50);
        assertEq(_closesAt(600, releaseAt, 1), releaseAt + 650, "an outage across releaseAt");
    }

    // ================================================================ reading the feed

    /// @notice A proxy's phase change (rounds of phase 2 start at (2 << 64) | 1): the walk follows it.
    function test_followsAPhaseChange() public {
        uint80 p1 = uint80(1 << 64);
        uint80 p2 = uint80(2 << 64);
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(p1 | 1, false, SETTLED_AT - 500);
        _push(p1 | 2, true, SETTLED_AT + 100); // phase 1 ends with the sequencer down
        _push(p2 | 1, true, SETTLED_AT + 150); // the new aggregator starts with the status it reads
        _push(p2 | 2, false, releaseAt + 100);
        uint256 expected = releaseAt + 100 + 600;
        assertEq(_reference(0, 600, releaseAt), expected, "the rule");
        assertEq(_closesAt(600, releaseAt, p1 | 1), expected, "walks into phase 2");
        // Later changes in phase 2 do not move it.
        for (uint256 i = 0; i < 20; i++) _push(p2 | uint80(3 + i), i % 2 == 0, expected + 1 + i);
        assertEq(_closesAt(600, releaseAt, p1 | 1), expected, "closed stays closed across phases");
    }

    /// @notice A skipped phase (no phase 2 round 1) is history the walk cannot read: NEVER.
    function test_skippedPhaseIsNever() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(uint80(1 << 64) | 1, true, SETTLED_AT - 500);
        _push(uint80(3 << 64) | 1, false, SETTLED_AT + 100);
        assertEq(_closesAt(0, releaseAt, uint80(1 << 64) | 1), NEVER, "unknown history");
    }

    /// @notice A round the walk needs reverts: NEVER. A reverting round after the close is never read.
    function test_revertingRound() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 10);
        _push(2, true, SETTLED_AT + 100);
        _push(3, false, SETTLED_AT + 200);
        _push(4, true, releaseAt + 10);
        _push(5, false, releaseAt + 20);
        _push(6, true, releaseAt + 30);
        assertEq(_closesAt(0, releaseAt, 1), releaseAt, "closes at releaseAt");
        feed.setReverts(5, true);
        feed.setReverts(6, true);
        assertEq(_closesAt(0, releaseAt, 1), releaseAt, "rounds after the one that ends the closing stretch: not read");
        feed.setReverts(4, true);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "round 4 proves the stretch lasts to releaseAt: NEVER");
        feed.setReverts(4, false);
        feed.setReverts(2, true);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "round 2 is needed: NEVER");
        feed.setReverts(2, false);
        feed.setReverts(1, true);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "the start round reverts: NEVER");
        feed.setReverts(1, false);
        feed.setRevertLatest(true);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "latestRoundData reverts: NEVER");
    }

    /// @notice Invalid history: an answer other than 0/1, timestamps going backwards, a zero startedAt: NEVER.
    function test_invalidHistoryIsNever() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 10);
        feed.push(2, 2, SETTLED_AT + 100);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "answer 2");
        feed.push(2, 1, SETTLED_AT - 20);
        feed.push(3, 0, SETTLED_AT + 30);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "startedAt going backwards");
        feed.push(2, 1, SETTLED_AT + 20);
        feed.push(1, 0, 0);
        feed.push(3, 0, SETTLED_AT + 30);
        assertEq(_closesAt(0, releaseAt, 1), NEVER, "startedAt 0");
    }

    /// @notice No start round (0), an unknown one (the feed did not answer at settlement), or one past the latest.
    function test_startRoundUnknownIsNever() public {
        uint256 releaseAt = SETTLED_AT + 3600;
        _push(1, false, SETTLED_AT - 10);
        assertEq(_closesAt(0, releaseAt, 1), releaseAt, "round 1");
        assertEq(_closesAt(0, releaseAt, 0), NEVER, "round 0");
        assertEq(_closesAt(0, releaseAt, SequencerWindow.UNKNOWN_ROUND), NEVER, "UNKNOWN_ROUND");
        assertEq(_closesAt(0, releaseAt, 2), NEVER, "past the latest");
    }

    /**
     * @notice MAX_ROUNDS: a history whose closing stretch is the MAX_ROUNDS-th round read gets its answer; two
     * rounds more and the answer is NEVER (the rule would close it: the walk stops, never closes early).
     */
    function test_maxRounds() public {
        uint256 max = SequencerWindow.MAX_ROUNDS;
        uint256 releaseAt = SETTLED_AT + 100;
        uint256 grace = 1000;
        // Round 1 down from before settlement; then up/down every 10 s (no up stretch lasts the grace period).
        _push(1, true, SETTLED_AT - 10);
        for (uint256 i = 2; i <= max; i++) _push(uint80(i), i % 2 == 1, SETTLED_AT + 10 * i);
        assertTrue(!downs[max - 1], "the latest round is up");
        uint256 expected = starts[max - 1] + grace;
        assertEq(_reference(0, grace, releaseAt), expected, "the rule");
        assertEq(_closesAt(grace, releaseAt, 1), expected, "MAX_ROUNDS rounds read");
        _push(uint80(max + 1), true, SETTLED_AT + 10 * (max + 1));
        _push(uint80(max + 2), false, SETTLED_AT + 10 * (max + 2));
        assertEq(_reference(0, grace, releaseAt), starts[max + 1] + grace, "the rule closes it");
        assertEq(_closesAt(grace, releaseAt, 1), NEVER, "beyond MAX_ROUNDS: NEVER");
        // Read from a later settlement round, the same history is within reach again.
        assertEq(_closesAt(grace, releaseAt, 3), starts[max + 1] + grace, "from round 3");
    }

    // ============================================================= helpers

    function _push(uint80 id, bool down, uint256 at) internal {
        ids.push(id);
        downs.push(down);
        starts.push(at);
        feed.push(id, down ? int256(1) : int256(0), at);
    }

    function _closesAt(uint256 grace, uint256 releaseAt, uint80 startRound) internal view returns (uint256) {
        return SequencerWindow.closesAt(AggregatorV3Interface(address(feed)), grace, SETTLED_AT, releaseAt, startRound);
    }

    /// @dev The rule over the recorded history from index `from` (the settlement round) on.
    function _reference(uint256 from, uint256 grace, uint256 releaseAt) internal view returns (uint256) {
        uint256 n = downs.length - from;
        bool[] memory down = new bool[](n);
        uint256[] memory at = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            down[i] = downs[from + i];
            at[i] = starts[from + i];
        }
        return ReferenceSequencerWindow.closesAt(down, at, grace, SETTLED_AT, releaseAt);
    }
}
