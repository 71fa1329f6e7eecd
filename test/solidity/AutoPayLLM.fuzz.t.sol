// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AutoPayLLM} from "../../contracts/AutoPayLLM.sol";
import {IAutoPayLLM} from "../../contracts/interfaces/IAutoPayLLM.sol";
import {ChargeMerkle} from "../../contracts/libraries/ChargeMerkle.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {MockFunctionsRouter} from "../../contracts/mocks/MockFunctionsRouter.sol";
import {UsageOracle} from "../../contracts/oracle/UsageOracle.sol";
import {HistoryFeed} from "./utils/HistoryFeed.sol";
import {ReferenceMerkle} from "./utils/ReferenceMerkle.sol";
import {TestBase} from "./utils/TestBase.sol";

contract AutoPayLLMFuzzTest is TestBase {
    AutoPayLLM internal router;
    MockERC20 internal token;
    address internal constant PAYER = address(0xA11CE);
    uint256 internal nonce;

    function setUp() public {
        VM.warp(1_750_000_000);
        token = new MockERC20("Pay", "PAY", 18);
        router = new AutoPayLLM(address(token), address(this));
        router.grantRole(router.RELAYER_ROLE(), address(this));
        router.registerProvider("openai", address(0xBEEF));
        token.mint(PAYER, type(uint128).max);
        VM.startPrank(PAYER);
        token.approve(address(router), type(uint256).max);
        router.deposit(type(uint96).max);
        VM.stopPrank();
    }

    function _settleOne(IAutoPayLLM.Charge memory charge) internal returns (uint256 escrowed) {
        IAutoPayLLM.Charge[] memory charges = new IAutoPayLLM.Charge[](1);
        charges[0] = charge;
        uint256 before = router.totalEscrow();
        bytes32 batchId = keccak256(abi.encode(nonce++));
        router.settleBatch(batchId, charges, keccak256(abi.encode("receipts", batchId)), "cid");
        return router.totalEscrow() - before;
    }

    /// @notice A row is charged iff 0 < amount <= ceil(tokens * cap / 1000); never a partial charge.
    function testFuzz_priceCap(uint64 tokens, uint128 price, uint128 amount) public {
        price = uint128(bound(price, 1, 1e24));
        router.setModelPrice("m", price);
        uint256 cap = (uint256(tokens) * price + 999) / 1000;
        amount = uint128(bound(amount, 0, cap + 2 > type(uint96).max ? type(uint96).max : cap + 2));
        uint256 charged = _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, tokens, amount));
        bool accepted = amount != 0 && amount <= cap;
        assertEq(charged, accepted ? amount : 0, "charged");
        if (tokens != 0) assertTrue(cap != 0, "a call with usage has a non-zero cap");
    }

    /// @notice Whatever the rows, a payer is never charged more than its daily cap in one UTC day.
    function testFuzz_dailyCapHolds(uint96 cap, uint256 seed) public {
        cap = uint96(bound(cap, 1, 1e20));
        router.setModelPrice("m", 1e24);
        VM.prank(PAYER);
        router.setDailyCap(cap);
        uint256 total;
        for (uint256 i = 0; i < 8; i++) {
            uint128 amount = uint128(bound(uint256(keccak256(abi.encode(seed, i))), 1, uint256(cap) / 2 + 1));
            total += _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, 1e9, amount));
        }
        assertLe(total, cap, "spent today <= cap");
        (, uint256 spentToday,,,) = router.accountOf(PAYER);
        assertEq(spentToday, total, "spentToday");
    }

    /// @notice Whatever the rows, a model never takes more than its governed daily budget in one UTC day.
    function testFuzz_modelBudgetHolds(uint128 budget, uint256 seed) public {
        budget = uint128(bound(budget, 1, 1e20));
        router.setModelPrice("m", 1e24);
        router.setModelBudget("m", budget);
        uint256 total;
        for (uint256 i = 0; i < 8; i++) {
            uint128 amount = uint128(bound(uint256(keccak256(abi.encode(seed, i))), 1, uint256(budget) / 2 + 1));
            total += _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, 1e9, amount));
        }
        assertLe(total, budget, "model spend today <= budget");
    }

    // ============================================================ disputes

    /// @dev Per 1k tokens: any amount up to tokens * 1e27 is within the cap, so amounts are free to fuzz.
    uint256 internal constant BIG_PRICE = 1e30;

    /**
     * @notice refund = floor(heldAmount * overbilled / heldTokens), never above heldAmount, for any rows and any
     * overbilled figure governance may give (0..heldTokens); above heldTokens is refused. The payer's deposit gets
     * the refund (and the bond when overbilled > 0), the provider's credits the rest (and the bond otherwise).
     */
    function testFuzz_refundIsHeldShareOfOverbilled(uint256 seed, uint8 count, uint256 overbilled, uint256 extra)
        public
    {
        router.setModelPrice("m", BIG_PRICE);
        IAutoPayLLM.Charge[] memory rows = _randomRows(seed, bound(count, 1, 6));
        bytes32 batchId = _settleRows(rows, _bucket());
        IAutoPayLLM.RowRef[] memory refs = new IAutoPayLLM.RowRef[](rows.length);
        uint256 tokens;
        uint256 amount;
        for (uint256 i = 0; i < rows.length; i++) {
            refs[i] = _ref(batchId, rows, i);
            tokens += rows[i].tokens;
            amount += rows[i].amount;
        }
        VM.prank(PAYER);
        bytes32 disputeId = router.dispute(refs);
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeId);
        assertEq(info.billedTokens, tokens, "billedTokens");
        assertEq(info.heldTokens, tokens, "heldTokens");
        assertEq(info.heldAmount, amount, "heldAmount");

        uint256 tooMuch = tokens + 1 + bound(extra, 0, 1e30);
        try router.resolveDispute(disputeId, uint128(tooMuch)) {
            revert AssertionFailed("overbilled > heldTokens accepted", tooMuch, tokens);
        } catch (bytes memory reason) {
            assertEq(
                keccak256(reason),
                keccak256(abi.encodeWithSelector(IAutoPayLLM.AutoPayLLMOverbilledTooLarge.selector, tooMuch, tokens)),
                "AutoPayLLMOverbilledTooLarge"
            );
        }

        uint256 over = bound(overbilled, 0, tokens);
        uint256 depositBefore = router.balanceOf(PAYER);
        uint256 creditsBefore = router.credits(1);
        router.resolveDispute(disputeId, uint128(over));
        info = router.disputeInfo(disputeId);
        uint256 expected = amount * over / tokens;
        assertEq(info.refund, expected, "refund == heldAmount * overbilled / heldTokens");
        assertLe(info.refund, amount, "refund <= heldAmount");
        if (over == tokens) assertEq(info.refund, amount, "all overbilled: all refunded");
        if (over == 0) assertEq(info.refund, 0, "nothing overbilled: nothing refunded");
        assertEq(
            router.balanceOf(PAYER), depositBefore + expected + (over != 0 ? info.bond : 0), "payer gets refund (+bond)"
        );
        assertEq(
            router.credits(1), creditsBefore + amount - expected + (over == 0 ? info.bond : 0), "provider gets the rest"
        );
    }

    /**
     * @notice The ordering/dedup rule: a dispute's row list is accepted iff it is strictly increasing by
     * (uint256(batchId), index), so a row named twice (anywhere in the list) is refused and never counts twice;
     * an accepted list counts each named row once. A later dispute of the interval may name the same rows again:
     * they count toward its billed tokens but are not held again (held once), and with nothing new to hold it is
     * refused.
     */
    function testFuzz_sameRowNeverCountsTwice(uint256 seed, uint8 length, uint256 overbilled) public {
        router.setModelPrice("m", BIG_PRICE);
        uint64 callsFrom = _bucket();
        IAutoPayLLM.Charge[][2] memory rows;
        bytes32[2] memory batches;
        for (uint256 b = 0; b < 2; b++) {
            rows[b] = _randomRows(uint256(keccak256(abi.encode(seed, b))), 3);
            batches[b] = _settleRows(rows[b], callsFrom);
        }
        // The six rows in the order the contract wants them.
        uint256 low = uint256(batches[0]) < uint256(batches[1]) ? 0 : 1;
        uint256 n = 1 + bound(length, 0, 7);
        uint256[] memory picks = new uint256[](n); // position in that order: (batch low/high) * 3 + index
        IAutoPayLLM.RowRef[] memory refs = new IAutoPayLLM.RowRef[](n);
        uint256 firstBad; // first position not strictly after the previous (0: none)
        for (uint256 i = 0; i < n; i++) {
            picks[i] = uint256(keccak256(abi.encode(seed, "pick", i))) % 6;
            uint256 b = picks[i] < 3 ? low : 1 - low;
            refs[i] = _ref(batches[b], rows[b], picks[i] % 3);
            if (i != 0 && firstBad == 0 && picks[i] <= picks[i - 1]) firstBad = i;
        }
        VM.prank(PAYER);
        try router.dispute(refs) returns (bytes32 disputeId) {
            assertEq(firstBad, 0, "a list with a repeated or misordered row was accepted");
            uint256 tokens;
            for (uint256 i = 0; i < n; i++) tokens += refs[i].charge.tokens;
            IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeId);
            assertEq(info.billedTokens, tokens, "each named row counted once");
            assertEq(info.heldTokens, tokens, "each named row held once");
            router.resolveDispute(disputeId, uint128(bound(overbilled, 0, tokens)));

            // Name all six: the rows held before count toward billed tokens but are not held again.
            IAutoPayLLM.RowRef[] memory all = new IAutoPayLLM.RowRef[](6);
            uint256 billed;
            uint256 fresh;
            for (uint256 p = 0; p < 6; p++) {
                uint256 b = p < 3 ? low : 1 - low;
                all[p] = _ref(batches[b], rows[b], p % 3);
                billed += all[p].charge.tokens;
                bool named;
                for (uint256 i = 0; i < n; i++) if (picks[i] == p) named = true;
                if (!named) fresh += all[p].charge.tokens;
            }
            VM.prank(PAYER);
            try router.dispute(all) returns (bytes32 second) {
                IAutoPayLLM.DisputeInfo memory again = router.disputeInfo(second);
                assertEq(again.billedTokens, billed, "all rows billed");
                assertEq(again.heldTokens, fresh, "only rows no dispute held before are held");
                assertEq(again.priorRefundedTokens, router.disputeInfo(disputeId).overbilledTokens, "prior refunded");
            } catch (bytes memory reason) {
                assertEq(fresh, 0, "a dispute with new rows to hold reverted");
                assertEq(
                    keccak256(reason),
                    keccak256(abi.encodeWithSelector(IAutoPayLLM.AutoPayLLMNothingToHold.selector)),
                    "AutoPayLLMNothingToHold"
                );
            }
        } catch (bytes memory reason) {
            assertTrue(firstBad != 0, "a strictly increasing list was refused");
            assertEq(
                keccak256(reason),
                keccak256(abi.encodeWithSelector(IAutoPayLLM.AutoPayLLMRowsNotOrdered.selector, firstBad)),
                "AutoPayLLMRowsNotOrdered(first bad position)"
            );
        }
    }

    /**
     * @notice The oracle's rule through a real answer: a first dispute refunds some tokens; a second batch of the
     * same interval is disputed naming every row of both batches; the DON reports random usage. The second dispute's
     * overbilled tokens are max(0, excess - prior) capped by its held tokens (0 within the tolerance), exactly
     * `overbilledFor`; the interval never refunds more tokens than it billed; without tolerance, the two disputes
     * together refund the excess to the token (as far as the rows they hold allow). (Issue #12, P2: before, the
     * oracle compared one disputed row with the payer's whole usage over a lookback from the settlement time, so a
     * row billed twice next to honest usage came back "refund 0".)
     */
    function testFuzz_oracleRefundsTheExcessOnce(
        uint256 seed,
        uint256 reported,
        uint16 tolerance,
        uint256 firstOver
    ) public {
        router.setModelPrice("m", BIG_PRICE);
        router.setDisputeTimeouts(1 days, 7 days);
        MockFunctionsRouter functions = new MockFunctionsRouter();
        UsageOracle oracle = new UsageOracle(address(router), address(functions), address(this));
        router.grantRole(router.ARBITER_ROLE(), address(oracle));
        oracle.setSource("return Functions.encodeUint256(0)");
        oracle.setUsageApi("http://127.0.0.1:8080");
        oracle.setFunctionsConfig(1, bytes32("don"), 300_000);
        tolerance = uint16(seed % 2 == 0 ? 0 : bound(tolerance, 0, 1000));
        oracle.setVerificationParams(5 minutes, 3, tolerance);
        router.setVerifier(address(oracle));

        uint64 callsFrom = _bucket();
        IAutoPayLLM.Charge[] memory a = _randomRows(uint256(keccak256(abi.encode(seed, "a"))), 1 + seed % 3);
        bytes32 batchA = _settleRows(a, callsFrom);
        VM.prank(PAYER);
        bytes32 first = router.dispute(_refs(batchA, a));
        uint256 heldA = router.disputeInfo(first).heldTokens;
        uint256 over1 = bound(firstOver, 0, heldA);
        router.resolveDispute(first, uint128(over1)); // governance

        IAutoPayLLM.Charge[] memory b = _randomRows(uint256(keccak256(abi.encode(seed, "b"))), 1 + (seed >> 8) % 3);
        bytes32 batchB = _settleRows(b, callsFrom);
        IAutoPayLLM.RowRef[] memory both = uint256(batchA) < uint256(batchB)
            ? _concat(_refs(batchA, a), _refs(batchB, b))
            : _concat(_refs(batchB, b), _refs(batchA, a));
        VM.prank(PAYER);
        bytes32 second = router.dispute(both); // opening it sent the request
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(second);
        uint256 billed = info.billedTokens;
        assertEq(info.priorRefundedTokens, over1, "prior refunded tokens");
        reported = bound(reported, 0, billed + 1000);

        uint256 excess = billed > reported ? billed - reported : 0;
        uint256 expected;
        if (excess * 10_000 > billed * tolerance) {
            expected = excess > over1 ? excess - over1 : 0;
            if (expected > info.heldTokens) expected = info.heldTokens;
        }
        assertEq(oracle.overbilledFor(second, reported), expected, "overbilledFor");

        functions.fulfill(oracle.verificationOf(second).requestId, abi.encode(reported), "");
        info = router.disputeInfo(second);
        assertTrue(info.status == IAutoPayLLM.DisputeStatus.Resolved, "resolved by the answer");
        assertEq(info.overbilledTokens, expected, "overbilled per the rule");
        assertEq(info.refund, uint256(info.heldAmount) * expected / info.heldTokens, "refund");
        uint256 refunded = router.intervalInfo(PAYER, 1, 1, callsFrom).refundedTokens;
        assertEq(refunded, over1 + expected, "interval refunded tokens");
        assertLe(refunded, billed, "never more tokens refunded than billed");
        if (tolerance == 0 && over1 <= excess) {
            uint256 reachable = over1 + info.heldTokens;
            assertEq(refunded, excess < reachable ? excess : reachable, "the excess refunded to the token");
        }
    }

    /**
     * @notice P4 in the router: a batch stores the sequencer feed's latest round when it settles and reads the
     * feed forward from there; once its window closed, 20 to 150 status changes (well beyond the walk's
     * MAX_ROUNDS) leave disputeClosesAt where it was, a dispute holds nothing, and the batch releases.
     */
    function testFuzz_closedWindowStaysClosedInTheRouter(uint256 seed, uint8 changes) public {
        router.setModelPrice("m", BIG_PRICE);
        HistoryFeed feed = new HistoryFeed();
        feed.push(7, 1, block.timestamp - 2 days); // history before settlement: never read
        feed.push(8, 0, block.timestamp - 1 days);
        router.setSequencerUptimeFeed(address(feed), 1800);
        IAutoPayLLM.Charge[] memory rows = _randomRows(seed, 2);
        bytes32 batchId = _settleRows(rows, _bucket());
        IAutoPayLLM.BatchInfo memory info = router.batchInfo(batchId);
        assertEq(info.sequencerRound, 8, "the round stored at settlement");
        uint256 closes = router.disputeClosesAt(batchId);
        assertEq(closes, info.releaseAt, "no outage: closes at releaseAt");
        VM.warp(closes);
        uint256 n = bound(changes, 20, 150);
        for (uint256 i = 0; i < n; i++) {
            VM.warp(block.timestamp + 1 + uint256(keccak256(abi.encode(seed, i))) % 600);
            feed.push(uint80(9 + i), i % 2 == 0 ? int256(1) : int256(0), block.timestamp);
            if (i % 10 == 9) assertEq(router.disputeClosesAt(batchId), closes, "stays closed");
        }
        assertEq(router.disputeClosesAt(batchId), closes, "a closed window stays closed");
        VM.prank(PAYER);
        try router.dispute(_refs(batchId, rows)) {
            revert AssertionFailed("a row held after its window closed", 0, 1);
        } catch (bytes memory reason) {
            assertEq(
                keccak256(reason),
                keccak256(abi.encodeWithSelector(IAutoPayLLM.AutoPayLLMNothingToHold.selector)),
                "AutoPayLLMNothingToHold"
            );
        }
        uint256 creditsBefore = router.credits(1);
        router.release(batchId);
        assertEq(router.credits(1), creditsBefore + rows[0].amount + rows[1].amount, "released to the provider");
    }

    function _bucket() internal view returns (uint64) {
        uint256 bucket = router.usageBucket();
        return uint64(block.timestamp - (block.timestamp % bucket));
    }

    function _randomRows(uint256 seed, uint256 n) internal pure returns (IAutoPayLLM.Charge[] memory rows) {
        rows = new IAutoPayLLM.Charge[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint64 tokens = uint64(bound(r, 1, type(uint64).max));
            uint128 amount = uint128(bound(r >> 64, 1, 1e27));
            rows[i] = IAutoPayLLM.Charge(PAYER, 1, 1, tokens, amount);
        }
    }

    function _settleRows(IAutoPayLLM.Charge[] memory rows, uint64 callsFrom) internal returns (bytes32 batchId) {
        batchId = keccak256(abi.encode("batch", nonce++));
        router.settleBatchAt(batchId, rows, keccak256(abi.encode("receipts", batchId)), "cid", callsFrom);
    }

    /// @dev Row `index` of a batch whose rows were all accepted, with its proof.
    function _ref(bytes32 batchId, IAutoPayLLM.Charge[] memory rows, uint256 index)
        internal
        pure
        returns (IAutoPayLLM.RowRef memory)
    {
        bytes32[] memory leaves = new bytes32[](rows.length);
        for (uint256 i = 0; i < rows.length; i++) {
            IAutoPayLLM.Charge memory c = rows[i];
            leaves[i] = ChargeMerkle.leaf(i, c.user, c.provider, c.model, c.tokens, c.amount);
        }
        bytes32[] memory proof = ReferenceMerkle.proof(ReferenceMerkle.tree(leaves), rows.length, index);
        return IAutoPayLLM.RowRef(batchId, index, rows[index], proof);
    }

    function _refs(bytes32 batchId, IAutoPayLLM.Charge[] memory rows)
        internal
        pure
        returns (IAutoPayLLM.RowRef[] memory refs)
    {
        refs = new IAutoPayLLM.RowRef[](rows.length);
        for (uint256 i = 0; i < rows.length; i++) refs[i] = _ref(batchId, rows, i);
    }

    function _concat(IAutoPayLLM.RowRef[] memory x, IAutoPayLLM.RowRef[] memory y)
        internal
        pure
        returns (IAutoPayLLM.RowRef[] memory out)
    {
        out = new IAutoPayLLM.RowRef[](x.length + y.length);
        for (uint256 i = 0; i < x.length; i++) out[i] = x[i];
        for (uint256 i = 0; i < y.length; i++) out[x.length + i] = y[i];
    }
}
