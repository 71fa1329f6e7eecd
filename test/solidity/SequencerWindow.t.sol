// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {SequencerWindow} from "../../contracts/libraries/SequencerWindow.sol";
import {ChainlinkMockV3Aggregator} from "../../contracts/mocks/ChainlinkMockV3Aggregator.sol";
import {ReferenceSequencerWindow} from "./utils/ReferenceSequencerWindow.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice SequencerWindow.closesAt against the rule written out (ReferenceSequencerWindow), on random histories.
contract SequencerWindowTest is TestBase {
    uint256 internal constant SETTLED_AT = 1_000_000;

    /// @notice Histories of up to 7 rounds (all within reach of the walk): the library gives the exact answer.
    function testFuzz_closesAtMatchesTheRule(uint256 seed, uint8 changes, uint64 window, uint64 grace, bool firstDown)
        public
    {
        uint256 n = 1 + bound(changes, 0, 6);
        window = uint64(bound(window, 60, 400));
        grace = uint64(bound(grace, 0, 300));
        uint256 releaseAt = SETTLED_AT + window;
        bool[] memory down = new bool[](n);
        uint256[] memory starts = new uint256[](n);
        ChainlinkMockV3Aggregator feed = new ChainlinkMockV3Aggregator(0, 0);
        uint256 t = SETTLED_AT - bound(uint256(keccak256(abi.encode(seed, "t0"))), 0, 200);
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 250);
            down[i] = (i % 2 == 0) == firstDown;
            starts[i] = t;
            feed.updateRoundData(uint80(i + 1), down[i] ? int256(1) : int256(0), t, t);
        }
        uint256 expected = ReferenceSequencerWindow.closesAt(down, starts, grace, SETTLED_AT, releaseAt);
        uint256 actual = SequencerWindow.closesAt(AggregatorV3Interface(address(feed)), grace, SETTLED_AT, releaseAt, 1);
        assertEq(actual, expected, "closesAt");
        assertTrue(actual >= releaseAt, "never before releaseAt");
    }

    /// @notice Whatever part of the history is unreadable, the answer is never earlier than the rule's.
    function testFuzz_unknownHistoryNeverClosesEarlier(uint256 seed, uint8 changes, uint8 hole, uint64 grace) public {
        uint256 n = 1 + bound(changes, 0, 11);
        grace = uint64(bound(grace, 0, 300));
        uint256 releaseAt = SETTLED_AT + 120;
        bool[] memory down = new bool[](n);
        uint256[] memory starts = new uint256[](n);
        ChainlinkMockV3Aggregator feed = new ChainlinkMockV3Aggregator(0, 0);
        uint256 t = SETTLED_AT - 50;
        uint256 missing = bound(hole, 0, n); // round `missing` is left out of the feed (0: none)
        for (uint256 i = 0; i < n; i++) {
            if (i > 0) t += bound(uint256(keccak256(abi.encode(seed, i))), 1, 90);
            down[i] = i % 2 == 1;
            starts[i] = t;
            if (i + 1 != missing || i + 1 == n) {
                feed.updateRoundData(uint80(i + 1), down[i] ? int256(1) : int256(0), t, t);
            }
        }
        feed.updateRoundData(uint80(n), down[n - 1] ? int256(1) : int256(0), starts[n - 1], starts[n - 1]);
        uint256 expected = ReferenceSequencerWindow.closesAt(down, starts, grace, SETTLED_AT, releaseAt);
        uint256 actual = SequencerWindow.closesAt(AggregatorV3Interface(address(feed)), grace, SETTLED_AT, releaseAt, 1);
        assertTrue(actual >= expected, "not earlier than the rule");
    }
}
