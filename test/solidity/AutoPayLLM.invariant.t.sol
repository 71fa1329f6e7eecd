// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AutoPayLLM} from "../../contracts/AutoPayLLM.sol";
import {IAutoPayLLM} from "../../contracts/interfaces/IAutoPayLLM.sol";
import {ChargeMerkle} from "../../contracts/libraries/ChargeMerkle.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {ChainlinkMockV3Aggregator} from "../../contracts/mocks/ChainlinkMockV3Aggregator.sol";
import {MockFunctionsRouter} from "../../contracts/mocks/MockFunctionsRouter.sol";
import {UsageOracle} from "../../contracts/oracle/UsageOracle.sol";
import {IUsageOracle} from "../../contracts/oracle/interfaces/IUsageOracle.sol";
import {ReferenceMerkle} from "./utils/ReferenceMerkle.sol";
import {ReferenceSequencerWindow} from "./utils/ReferenceSequencerWindow.sol";
import {TestBase, Vm} from "./utils/TestBase.sol";

/**
 * @notice Drives AutoPayLLM and its UsageOracle through random sequences of: deposits, withdrawals, refill settings;
 * settlements into a few usage buckets through `settleBatchAt` (on time and hours late; honest rows, rows that
 * duplicate an earlier batch's row, inflated rows, rows the contract rejects; replays of a batch id and of a
 * receipts root); interval disputes that name every settled row of a (payer, provider, model, bucket), or a subset,
 * or a malformed list (a row named twice, rows out of order); oracle answers through the mock Functions router
 * (random reported usage, errors, malformed responses, forged and superseded answers), verification retries by
 * third parties, governance resolutions, expirations (`settleExpiredDispute`), governance changes of the dispute
 * timeouts and bond, releases, credit withdrawals, L2 sequencer outages and time jumps. The handler is the relayer
 * and governance; the oracle is the only arbiter.
 *
 * Ghost records kept beside the contract: every batch's rows and which were accepted, each interval's accepted rows
 * and the tokens they billed, which dispute holds each row, every request sent to the Functions router. The
 * handler checks each outcome as it happens (a counter per kind of violation) and the invariants check the state.
 */
contract Handler is TestBase {
    uint256 internal constant PRICE = 1e15; // token units per 1k tokens
    uint256 internal constant GRACE = 1800;
    uint256 internal constant BUCKET = 3600;
    uint16 internal constant TOLERANCE_BPS = 100;

    struct RowKey {
        bytes32 batchId;
        uint256 index;
    }

    struct Interval {
        address payer;
        uint32 provider;
        uint32 model;
        uint64 callsFrom;
    }

    AutoPayLLM public immutable router;
    MockERC20 public immutable token;
    ChainlinkMockV3Aggregator public immutable sequencer;
    MockFunctionsRouter public immutable functionsRouter;
    UsageOracle public immutable oracle;

    address[] public payers;
    address[] public payees;

    // ---- ghost records
    bytes32[] public batchIds;
    mapping(bytes32 batchId => IAutoPayLLM.Charge[]) internal _rows;
    mapping(bytes32 batchId => bool[]) internal _accepted;
    bytes32[] public intervalKeys;
    mapping(bytes32 key => Interval) public intervals;
    mapping(bytes32 key => RowKey[]) internal _intervalRows;
    mapping(bytes32 key => uint256) public billedTokens; // accepted rows' tokens over the interval
    mapping(bytes32 key => uint256) public billedAmount; // and what they charged
    mapping(bytes32 key => uint256) public refundedTokens; // overbilled tokens of its resolved disputes
    mapping(bytes32 key => uint256) public refundedAmount; // refunds of its resolved disputes
    bytes32[] public disputeIds;
    mapping(bytes32 disputeId => bytes32 key) public disputeKey;
    mapping(bytes32 batchId => mapping(uint256 index => bytes32 disputeId)) public heldBy;
    mapping(bytes32 disputeId => uint256) public heldRowsTokens; // tokens of the rows the ghost saw it hold
    mapping(bytes32 disputeId => uint256) public deadlinesAtOpening; // arbiterDeadline << 64 | governanceDeadline
    mapping(bytes32 batchId => bytes32) public receiptsRootOf;
    bytes32[] public requests; // every Functions request id the oracle sent
    bool[] public sequencerDown; // status history, as recorded in the feed
    uint256[] public sequencerSince;

    // ---- violations seen by the actions (each must stay 0)
    uint256 public replaySuccesses; // a batch id or a receipts root settled twice
    uint256 public settleFailures; // a valid settlement reverted
    uint256 public malformedDisputesAccepted; // a row named twice or rows out of order accepted
    uint256 public doubleHolds; // a row's funds held by a second dispute
    uint256 public disputeMismatches; // billed/held totals differ from the named rows
    uint256 public unexpectedDisputeReverts; // a dispute that should open reverted
    uint256 public payoutMismatches; // deposit/credit changes differ from refund, bond and held amount
    uint256 public oracleMismatches; // the oracle's overbilled figure differs from the rule
    uint256 public lateResolutions; // an arbiter answer acted on after the arbiter deadline
    uint256 public forgedAnswersAccepted;
    uint256 public overResolutions; // overbilled > held tokens accepted, or an expiry before the deadline
    uint256 public earlyReleases;

    // ---- coverage (the sequences reach every path)
    uint256 public calls;
    uint256 public disputesOpened;
    uint256 public oracleResolutions;
    uint256 public oracleFailures;
    uint256 public governanceResolutions;
    uint256 public expirations;
    uint256 public refundsPaid;

    constructor() {
        token = new MockERC20("Pay", "PAY", 18);
        router = new AutoPayLLM(address(token), address(this));
        router.grantRole(router.RELAYER_ROLE(), address(this));
        router.setDisputeBond(1e16);
        router.setDisputeBondBps(500);
        for (uint256 i = 0; i < 2; i++) payers.push(address(uint160(0xA000 + i)));
        for (uint256 i = 0; i < 2; i++) {
            payees.push(address(uint160(0xB000 + i)));
            router.registerProvider(i == 0 ? "openai" : "groq", payees[i]);
        }
        router.setModelPrice("gpt-4-turbo", PRICE);
        router.setModelPrice("mixtral", PRICE / 3);
        router.setModelBudget("mixtral", 50e18);

        sequencer = new ChainlinkMockV3Aggregator(0, 0);
        _recordStatus(false, block.timestamp - 1 days);
        router.setSequencerUptimeFeed(address(sequencer), uint64(GRACE));

        functionsRouter = new MockFunctionsRouter();
        oracle = new UsageOracle(address(router), address(functionsRouter), address(this));
        router.grantRole(router.ARBITER_ROLE(), address(oracle));
        oracle.setSource("return Functions.encodeUint256(0)");
        oracle.setUsageApi("http://127.0.0.1:8080");
        // Every answer is delivered with the least callback gas the oracle accepts (P5): none may run out of gas.
        oracle.setFunctionsConfig(1, bytes32("don"), oracle.MIN_CALLBACK_GAS());
        oracle.setVerificationParams(5 minutes, 3, TOLERANCE_BPS);
        router.setVerifier(address(oracle));
    }

    // ============================================================== payers

    function deposit(uint256 who, uint256 amount) external {
        calls++;
        address payer = payers[who % payers.length];
        amount = bound(amount, 1, 100e18);
        token.mint(payer, amount);
        VM.startPrank(payer);
        token.approve(address(router), amount);
        router.deposit(amount);
        VM.stopPrank();
    }

    function withdraw(uint256 who, uint256 amount) external {
        calls++;
        address payer = payers[who % payers.length];
        uint256 balance = router.balanceOf(payer);
        if (balance == 0) return;
        VM.prank(payer);
        router.withdraw(bound(amount, 1, balance));
    }

    /// @notice Wallet funds and an allowance for pulls, and the payer's own cap and refill settings.
    function configurePayer(uint256 who, uint256 allowance, uint256 cap, uint256 threshold, uint256 refill) external {
        calls++;
        address payer = payers[who % payers.length];
        allowance = bound(allowance, 0, 50e18);
        token.mint(payer, allowance);
        VM.startPrank(payer);
        token.approve(address(router), allowance);
        router.setDailyCap(cap % 3 == 0 ? 0 : bound(cap, 1e15, 20e18));
        router.setAutoRefill(uint128(bound(threshold, 0, 5e18)), uint128(bound(refill, 0, 10e18)));
        VM.stopPrank();
    }

    // ========================================================== settlement

    /**
     * @notice Settles 1-3 rows into a usage bucket through `settleBatchAt`: the current one, one or three hours back
     * (a late batch), or the bucket of an earlier batch (then some rows duplicate that batch's rows: the same usage
     * billed twice); or through the 4-argument `settleBatch` (the bucket of the settlement time).
     */
    function settle(uint256 seed, uint256 count, uint256 bucketSeed) external {
        calls++;
        uint256 n = bound(count, 1, 3);
        uint256 current = block.timestamp - (block.timestamp % BUCKET);
        uint256 choice = bucketSeed % 5;
        uint64 callsFrom = uint64(choice == 1 ? current - BUCKET : choice == 2 ? current - 3 * BUCKET : current);
        bytes32 source;
        if (choice == 3 && batchIds.length != 0) {
            source = batchIds[(bucketSeed >> 8) % batchIds.length];
            callsFrom = uint64(router.batchInfo(source).callsFrom);
        }
        IAutoPayLLM.Charge[] memory charges = new IAutoPayLLM.Charge[](n);
        for (uint256 i = 0; i < n; i++) {
            charges[i] = _row(uint256(keccak256(abi.encode(seed, i))), source);
        }
        bytes32 batchId = keccak256(abi.encode("batch", seed, batchIds.length));
        bytes32 receiptsRoot = keccak256(abi.encode("receipts", batchId));
        VM.recordLogs();
        if (choice == 4) {
            // The 4-argument settleBatch commits the bucket of the settlement time.
            try router.settleBatch(batchId, charges, receiptsRoot, "bafkrei-invariant") {}
            catch {
                settleFailures++;
                return;
            }
        } else {
            try router.settleBatchAt(batchId, charges, receiptsRoot, "bafkrei-invariant", callsFrom) {}
            catch {
                settleFailures++;
                return;
            }
        }
        if (router.batchInfo(batchId).callsFrom != callsFrom) settleFailures++;
        receiptsRootOf[batchId] = receiptsRoot;
        Vm.Log[] memory logs = VM.getRecordedLogs();
        _record(batchId, charges, logs, callsFrom);

        // A batch id settles once, and so does a receipts root (the same receipts under another id).
        try router.settleBatchAt(batchId, charges, keccak256(abi.encode(receiptsRoot)), "replay", callsFrom) {
            replaySuccesses++;
        } catch {}
        try router.settleBatchAt(keccak256(abi.encode(batchId)), charges, receiptsRoot, "replay", callsFrom) {
            replaySuccesses++;
        } catch {}
    }

    function release(uint256 seed) external {
        calls++;
        if (batchIds.length == 0) return;
        bytes32 batchId = batchIds[seed % batchIds.length];
        IAutoPayLLM.BatchInfo memory info = router.batchInfo(batchId);
        if (info.status != IAutoPayLLM.BatchStatus.Escrowed) return;
        uint256 closes = referenceClosesAt(batchId);
        try router.release(batchId) {
            if (block.timestamp < closes) earlyReleases++;
            return;
        } catch {}
        uint256 routerCloses = router.disputeClosesAt(batchId);
        if (routerCloses == type(uint256).max) return; // the sequencer is down: the window cannot close
        if (block.timestamp < routerCloses) VM.warp(routerCloses);
        router.release(batchId);
    }

    function withdrawCredits(uint256 which) external {
        calls++;
        uint32 provider = uint32(1 + (which % payees.length));
        if (router.credits(provider) == 0) return;
        VM.prank(payees[provider - 1]);
        router.withdrawCredits(provider);
    }

    // ============================================================ disputes

    /**
     * @notice The payer of a random interval disputes it: names every accepted row (usually), a random subset, or
     * a malformed list (a row named twice, two rows swapped), which must be refused.
     */
    function openDispute(uint256 seed, uint256 mode) external {
        calls++;
        if (intervalKeys.length == 0) return;
        bytes32 key = intervalKeys[seed % intervalKeys.length];
        RowKey[] memory named = _sortedRows(key);
        mode = mode % 10;
        if (mode == 6 && named.length > 1) named = _subset(named, seed);
        bool malformed;
        if (mode == 7) {
            named = _withDuplicate(named, seed);
            malformed = true;
        } else if (mode == 8 && named.length > 1) {
            uint256 k = (seed >> 16) % (named.length - 1);
            (named[k], named[k + 1]) = (named[k + 1], named[k]);
            malformed = true;
        }
        _dispute(key, named, malformed);
    }

    /// @notice Governance (the handler holds DEFAULT_ADMIN_ROLE) resolves an open dispute with any overbilled figure.
    function governanceResolve(uint256 seed, uint256 overbilled) external {
        calls++;
        (bytes32 disputeId, IAutoPayLLM.DisputeInfo memory info) = _pickOpen(seed);
        if (disputeId == bytes32(0)) return;
        if (block.timestamp >= info.governanceDeadline) return;
        // More than the held tokens is refused.
        try router.resolveDispute(disputeId, info.heldTokens + 1) {
            overResolutions++;
        } catch {}
        uint128 over = uint128(overbilled % 3 == 0 ? 0 : bound(overbilled, 0, info.heldTokens));
        (uint256 depositBefore, uint256 creditsBefore) = _balances(info);
        router.resolveDispute(disputeId, over);
        _checkPayout(disputeId, info, depositBefore, creditsBefore);
        governanceResolutions++;
    }

    /// @notice Nobody judged a dispute in time: past its governance deadline anyone settles it (the charge stands).
    function expire(uint256 seed, bool jump) external {
        calls++;
        (bytes32 disputeId, IAutoPayLLM.DisputeInfo memory info) = _pickOpen(seed);
        if (disputeId == bytes32(0)) return;
        if (block.timestamp < info.governanceDeadline) {
            try router.settleExpiredDispute(disputeId) {
                overResolutions++;
            } catch {}
            if (!jump) return;
            VM.warp(info.governanceDeadline);
        }
        (uint256 depositBefore, uint256 creditsBefore) = _balances(info);
        VM.prank(address(0xCAFE));
        router.settleExpiredDispute(disputeId);
        _checkPayout(disputeId, info, depositBefore, creditsBefore);
        expirations++;
    }

    /// @notice Governance changes the dispute timeouts and the bond: disputes already open keep their deadlines.
    function setDisputeParams(uint256 arbiter, uint256 governance, uint256 bond, uint256 bps) external {
        calls++;
        router.setDisputeTimeouts(uint64(bound(arbiter, 1 hours, 7 days)), uint64(bound(governance, 1 hours, 21 days)));
        router.setDisputeBond(bound(bond, 0, 1e18));
        router.setDisputeBondBps(uint16(bound(bps, 0, 5000)));
    }

    // ============================================================== oracle

    /// @notice Anyone (a payee, a keeper) starts or retries the verification of an open dispute.
    function requestVerification(uint256 seed, bool wait) external {
        calls++;
        (bytes32 disputeId,) = _pickOpen(seed);
        if (disputeId == bytes32(0)) return;
        if (wait) VM.warp(block.timestamp + oracle.requestTimeout());
        VM.prank(seed % 2 == 0 ? payees[0] : address(0xCAFE));
        try oracle.requestVerification(disputeId) returns (bytes32 requestId) {
            requests.push(requestId);
        } catch {}
    }

    /**
     * @notice The DON answers the request in flight of an open dispute: a usage figure (checked against the rule),
     * an error, a malformed response; or a forger or a stale request's answer arrives (must be refused).
     */
    function fulfill(uint256 seed, uint256 reported, uint8 kind) external {
        calls++;
        kind = kind % 7;
        if (kind == 5) {
            bytes32 forged = keccak256(abi.encode("forged", seed));
            try functionsRouter.fulfillUnchecked(address(oracle), forged, abi.encode(uint256(0)), "") {
                forgedAnswersAccepted++;
            } catch {}
            return;
        }
        if (kind == 6) {
            if (requests.length == 0) return;
            bytes32 stale = requests[seed % requests.length];
            if (oracle.requestOf(stale).sentAt != 0) return; // still in flight: a legitimate answer
            try functionsRouter.fulfillUnchecked(address(oracle), stale, abi.encode(uint256(0)), "") {
                forgedAnswersAccepted++;
            } catch {}
            return;
        }
        (bytes32 disputeId, IAutoPayLLM.DisputeInfo memory info) = _pickOpen(seed);
        if (disputeId == bytes32(0)) return;
        bytes32 requestId = oracle.verificationOf(disputeId).requestId;
        if (requestId == bytes32(0)) return;
        reported = bound(reported, 0, uint256(info.billedTokens) * 5 / 4 + 10);
        bytes memory response = abi.encode(reported);
        bytes memory err;
        if (kind == 3) {
            response = "";
            err = bytes("usage API answered HTTP 503");
        } else if (kind == 4) {
            response = abi.encode(reported, reported);
        }
        uint128 expected = referenceOverbilled(info, reported);
        (uint256 depositBefore, uint256 creditsBefore) = _balances(info);
        try functionsRouter.fulfill(requestId, response, err) {}
        catch {
            oracleMismatches++; // an answer to the request in flight is always taken (resolved or failed)
            return;
        }
        IAutoPayLLM.DisputeInfo memory after_ = router.disputeInfo(disputeId);
        if (after_.status == IAutoPayLLM.DisputeStatus.Open) {
            oracleFailures++;
            // Only an error, a malformed answer or a late one may leave the dispute open.
            if (kind < 3 && block.timestamp < info.arbiterDeadline) oracleMismatches++;
            return;
        }
        if (kind >= 3) oracleMismatches++;
        if (block.timestamp >= info.arbiterDeadline) lateResolutions++;
        if (after_.overbilledTokens != expected) oracleMismatches++;
        _checkPayout(disputeId, info, depositBefore, creditsBefore);
        oracleResolutions++;
    }

    // =============================================================== world

    /// @notice The L2 sequencer goes down (now and then) or comes back up (a feed round only on a change).
    function toggleSequencer(uint256 seed) external {
        calls++;
        bool down = sequencerDown[sequencerDown.length - 1];
        if (!down && seed % 4 != 0) return;
        _recordStatus(!down, block.timestamp);
    }

    function warp(uint256 seconds_) external {
        calls++;
        // Short steps keep dispute windows (1 h) and oracle deadlines open often enough to be exercised;
        // release() and expire() jump as far as they need.
        VM.warp(block.timestamp + bound(seconds_, 1, 2 hours));
    }

    // ========================================================= ghost views

    /// @notice When the rule (written out, over the whole recorded sequencer history) closes `batchId`'s window.
    function referenceClosesAt(bytes32 batchId) public view returns (uint256) {
        IAutoPayLLM.BatchInfo memory info = router.batchInfo(batchId);
        return ReferenceSequencerWindow.closesAt(sequencerDown, sequencerSince, GRACE, info.settledAt, info.releaseAt);
    }

    /// @notice The issue's rule for an oracle answer, written out: excess over the report beyond the tolerance, less
    /// what the interval already refunded, at most the held tokens.
    function referenceOverbilled(IAutoPayLLM.DisputeInfo memory info, uint256 reported) public pure returns (uint128) {
        uint256 billed = info.billedTokens;
        uint256 excess = billed > reported ? billed - reported : 0;
        if (excess * 10_000 <= billed * TOLERANCE_BPS) return 0;
        uint256 remaining = excess > info.priorRefundedTokens ? excess - info.priorRefundedTokens : 0;
        return uint128(remaining < info.heldTokens ? remaining : info.heldTokens);
    }

    function batchCount() external view returns (uint256) {
        return batchIds.length;
    }

    function intervalCount() external view returns (uint256) {
        return intervalKeys.length;
    }

    function disputeCount() external view returns (uint256) {
        return disputeIds.length;
    }

    function requestCount() external view returns (uint256) {
        return requests.length;
    }

    function payerCount() external view returns (uint256) {
        return payers.length;
    }

    function intervalRowCount(bytes32 key) external view returns (uint256) {
        return _intervalRows[key].length;
    }

    function intervalRow(bytes32 key, uint256 i) external view returns (bytes32 batchId, uint256 index) {
        RowKey memory row = _intervalRows[key][i];
        return (row.batchId, row.index);
    }

    function charge(bytes32 batchId, uint256 index) external view returns (IAutoPayLLM.Charge memory) {
        return _rows[batchId][index];
    }

    /// @notice Liabilities summed account by account from the router's views, independent of its own totals.
    function summedLiabilities()
        external
        view
        returns (uint256 deposits, uint256 escrow, uint256 credits, uint256 bonds)
    {
        for (uint256 i = 0; i < payers.length; i++) deposits += router.balanceOf(payers[i]);
        for (uint32 p = 1; p <= payees.length; p++) credits += router.credits(p);
        for (uint256 b = 0; b < batchIds.length; b++) {
            uint256 shares = router.batchInfo(batchIds[b]).shareCount;
            for (uint256 k = 0; k < shares; k++) {
                (, uint256 amount) = router.batchShare(batchIds[b], k);
                escrow += amount;
            }
        }
        for (uint256 d = 0; d < disputeIds.length; d++) {
            IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeIds[d]);
            if (info.status == IAutoPayLLM.DisputeStatus.Open) {
                escrow += info.heldAmount;
                bonds += info.bond;
            }
        }
    }

    // ============================================================ internal

    /// @dev One row: mostly honest, some duplicating a row of `source`, some inflated, some the contract rejects.
    function _row(uint256 r, bytes32 source) internal view returns (IAutoPayLLM.Charge memory c) {
        uint256 kind = r % 10;
        if ((kind == 5 || kind == 6) && source != bytes32(0)) {
            IAutoPayLLM.Charge[] storage rows = _rows[source];
            uint256 i = (r >> 8) % rows.length;
            if (_accepted[source][i]) return rows[i]; // the same usage billed again under another batch
        }
        address user = payers[(r >> 8) % payers.length];
        uint32 provider = uint32(kind == 9 ? 3 : 1 + ((r >> 16) % 2)); // 3: unknown provider
        uint32 model = uint32((r >> 24) % 4 == 0 ? 2 : 1);
        uint64 tokens = uint64(bound(r >> 32, 1, 50_000));
        if (kind == 7) tokens *= 10; // inflated
        uint256 price = model == 2 ? PRICE / 3 : PRICE;
        uint128 amount = uint128((uint256(tokens) * price + 999) / 1000);
        if (kind == 8) amount = (r >> 128) % 2 == 0 ? amount + 1 : 0; // over the price cap, or zero
        c = IAutoPayLLM.Charge(user, provider, model, tokens, amount);
    }

    function _record(bytes32 batchId, IAutoPayLLM.Charge[] memory charges, Vm.Log[] memory logs, uint64 callsFrom)
        internal
    {
        bool[] storage accepted = _accepted[batchId];
        for (uint256 i = 0; i < charges.length; i++) {
            _rows[batchId].push(charges[i]);
            accepted.push(true);
        }
        for (uint256 k = 0; k < logs.length; k++) {
            if (logs[k].topics[0] == IAutoPayLLM.RowRejected.selector && logs[k].topics[1] == batchId) {
                (uint256 index,) = abi.decode(logs[k].data, (uint256, uint8));
                accepted[index] = false;
            }
        }
        batchIds.push(batchId);
        for (uint256 i = 0; i < charges.length; i++) {
            if (!accepted[i]) continue;
            IAutoPayLLM.Charge memory c = charges[i];
            bytes32 key = keccak256(abi.encode(c.user, c.provider, c.model, uint256(callsFrom)));
            if (_intervalRows[key].length == 0) {
                intervalKeys.push(key);
                intervals[key] = Interval(c.user, c.provider, c.model, callsFrom);
            }
            _intervalRows[key].push(RowKey(batchId, i));
            billedTokens[key] += c.tokens;
            billedAmount[key] += c.amount;
        }
    }

    function _dispute(bytes32 key, RowKey[] memory named, bool malformed) internal {
        Interval memory interval = intervals[key];
        IAutoPayLLM.RowRef[] memory refs = new IAutoPayLLM.RowRef[](named.length);
        uint256 billed;
        uint256 heldTokens;
        uint256 heldAmount;
        uint256 amounts;
        for (uint256 i = 0; i < named.length; i++) {
            IAutoPayLLM.Charge memory c = _rows[named[i].batchId][named[i].index];
            refs[i] = IAutoPayLLM.RowRef(named[i].batchId, named[i].index, c, _proof(named[i].batchId, named[i].index));
            amounts += c.amount;
            if (malformed) continue;
            billed += c.tokens;
            if (_holdable(named[i])) {
                heldTokens += c.tokens;
                heldAmount += c.amount;
            }
        }
        // Fund the bond: minted to the payer's wallet and approved beside the allowance the payer set.
        uint256 bond = router.disputeBondFor(amounts);
        token.mint(interval.payer, bond);
        uint256 allowance = token.allowance(interval.payer, address(router));
        VM.prank(interval.payer);
        token.approve(address(router), allowance + bond);
        bool intervalBusy =
            router.intervalInfo(interval.payer, interval.provider, interval.model, interval.callsFrom).openDispute
                != bytes32(0);

        VM.prank(interval.payer);
        try router.dispute(refs) returns (bytes32 disputeId) {
            if (malformed) malformedDisputesAccepted++;
            _opened(key, disputeId, named, billed, heldTokens, heldAmount);
        } catch {
            if (!malformed && !intervalBusy && heldAmount != 0) unexpectedDisputeReverts++;
        }
    }

    /// @dev A row is held by a new dispute iff no dispute held it and its batch is escrowed within an open window.
    function _holdable(RowKey memory row) internal view returns (bool) {
        if (heldBy[row.batchId][row.index] != bytes32(0)) return false;
        IAutoPayLLM.BatchInfo memory batch = router.batchInfo(row.batchId);
        return batch.status == IAutoPayLLM.BatchStatus.Escrowed && block.timestamp < router.disputeClosesAt(row.batchId);
    }

    function _opened(
        bytes32 key,
        bytes32 disputeId,
        RowKey[] memory named,
        uint256 billed,
        uint256 heldTokens,
        uint256 heldAmount
    ) internal {
        disputesOpened++;
        disputeIds.push(disputeId);
        disputeKey[disputeId] = key;
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeId);
        if (
            info.billedTokens != billed || info.heldTokens != heldTokens || info.heldAmount != heldAmount
                || info.rows != named.length || info.priorRefundedTokens != refundedTokens[key]
        ) disputeMismatches++;
        if (
            info.arbiterDeadline != block.timestamp + router.arbiterTimeout()
                || info.governanceDeadline != uint256(info.arbiterDeadline) + router.governanceTimeout()
                || info.bond != router.disputeBondFor(heldAmount)
        ) disputeMismatches++;
        deadlinesAtOpening[disputeId] = (uint256(info.arbiterDeadline) << 64) | info.governanceDeadline;
        uint256 ghostHeld;
        for (uint256 i = 0; i < named.length; i++) {
            bytes32 holder = router.rowDispute(named[i].batchId, named[i].index);
            if (holder != disputeId) continue;
            if (heldBy[named[i].batchId][named[i].index] != bytes32(0)) doubleHolds++;
            heldBy[named[i].batchId][named[i].index] = disputeId;
            ghostHeld += _rows[named[i].batchId][named[i].index].tokens;
        }
        heldRowsTokens[disputeId] = ghostHeld;
        if (ghostHeld != heldTokens) disputeMismatches++;
        // Opening started the verification (the router calls the oracle).
        bytes32 requestId = oracle.verificationOf(disputeId).requestId;
        if (requestId != bytes32(0)) requests.push(requestId);
    }

    /**
     * @dev After a dispute closed: the payer's deposit grew by the refund (and the bond when returned), the
     * provider's credits by the rest of the held amount (and the bond otherwise); refund = held * over / heldTokens.
     */
    function _checkPayout(
        bytes32 disputeId,
        IAutoPayLLM.DisputeInfo memory before,
        uint256 depositBefore,
        uint256 creditsBefore
    ) internal {
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeId);
        uint256 refund = info.refund;
        uint256 over = info.overbilledTokens;
        bool expired = info.status == IAutoPayLLM.DisputeStatus.Expired;
        if (expired && (refund != 0 || over != 0)) payoutMismatches++;
        if (!expired && refund != uint256(before.heldAmount) * over / before.heldTokens) payoutMismatches++;
        if (refund > before.heldAmount || over > before.heldTokens) payoutMismatches++;
        bool bondBack = expired || over != 0;
        (uint256 depositAfter, uint256 creditsAfter) = _balances(before);
        if (depositAfter != depositBefore + refund + (bondBack ? before.bond : 0)) payoutMismatches++;
        if (creditsAfter != creditsBefore + before.heldAmount - refund + (bondBack ? 0 : before.bond)) {
            payoutMismatches++;
        }
        bytes32 key = disputeKey[disputeId];
        refundedTokens[key] += over;
        refundedAmount[key] += refund;
        if (refund != 0) refundsPaid++;
    }

    function _balances(IAutoPayLLM.DisputeInfo memory info) internal view returns (uint256, uint256) {
        return (router.balanceOf(info.payer), router.credits(info.provider));
    }

    /// @dev An open dispute, searching from a random start; zero when none is open.
    function _pickOpen(uint256 seed) internal view returns (bytes32, IAutoPayLLM.DisputeInfo memory info) {
        uint256 n = disputeIds.length;
        for (uint256 k = 0; k < n; k++) {
            bytes32 disputeId = disputeIds[(seed + k) % n];
            info = router.disputeInfo(disputeId);
            if (info.status == IAutoPayLLM.DisputeStatus.Open) return (disputeId, info);
        }
        return (bytes32(0), info);
    }

    /// @dev The interval's accepted rows, strictly increasing by (uint256(batchId), index), as `dispute` wants them.
    function _sortedRows(bytes32 key) internal view returns (RowKey[] memory rows) {
        rows = _intervalRows[key];
        for (uint256 i = 1; i < rows.length; i++) {
            RowKey memory row = rows[i];
            uint256 j = i;
            while (j > 0 && _before(row, rows[j - 1])) {
                rows[j] = rows[j - 1];
                j--;
            }
            rows[j] = row;
        }
    }

    function _before(RowKey memory a, RowKey memory b) internal pure returns (bool) {
        return uint256(a.batchId) < uint256(b.batchId) || (a.batchId == b.batchId && a.index < b.index);
    }

    /// @dev A non-empty ordered subset of `rows`.
    function _subset(RowKey[] memory rows, uint256 seed) internal pure returns (RowKey[] memory subset) {
        uint256 mask = uint256(keccak256(abi.encode(seed, "subset")));
        uint256 count;
        for (uint256 i = 0; i < rows.length; i++) if ((mask >> i) & 1 == 1) count++;
        if (count == 0) mask = 1;
        if (count == 0) count = 1;
        subset = new RowKey[](count);
        uint256 j;
        for (uint256 i = 0; i < rows.length; i++) if ((mask >> i) & 1 == 1) subset[j++] = rows[i];
    }

    /// @dev `rows` with one of them named a second time, right after itself.
    function _withDuplicate(RowKey[] memory rows, uint256 seed) internal pure returns (RowKey[] memory out) {
        uint256 k = (seed >> 32) % rows.length;
        out = new RowKey[](rows.length + 1);
        uint256 j;
        for (uint256 i = 0; i < rows.length; i++) {
            out[j++] = rows[i];
            if (i == k) out[j++] = rows[i];
        }
    }

    function _recordStatus(bool down, uint256 at) internal {
        sequencerDown.push(down);
        sequencerSince.push(at);
        sequencer.updateRoundData(uint80(sequencerDown.length), down ? int256(1) : int256(0), at, at);
    }

    function _proof(bytes32 batchId, uint256 index) internal view returns (bytes32[] memory) {
        IAutoPayLLM.Charge[] storage rows = _rows[batchId];
        bool[] storage accepted = _accepted[batchId];
        uint256 count;
        for (uint256 i = 0; i < rows.length; i++) if (accepted[i]) count++;
        bytes32[] memory leaves = new bytes32[](count);
        uint256 position;
        uint256 j;
        for (uint256 i = 0; i < rows.length; i++) {
            if (!accepted[i]) continue;
            if (i == index) position = j;
            IAutoPayLLM.Charge memory c = rows[i];
            leaves[j++] = ChargeMerkle.leaf(i, c.user, c.provider, c.model, c.tokens, c.amount);
        }
        return ReferenceMerkle.proof(ReferenceMerkle.tree(leaves), count, position);
    }
}

contract AutoPayLLMInvariantTest is TestBase {
    Handler internal handler;

    function setUp() public {
        VM.warp(1_750_000_000);
        handler = new Handler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice Token balance of the router == deposits + escrow + credits + bonds, summed account by account
    /// (payers' deposits, providers' credits, batches' releasable shares and open disputes' held amounts, open
    /// disputes' bonds), and each of the router's totals equals its sum.
    function invariant_solvency() public view {
        AutoPayLLM router = handler.router();
        (uint256 deposits, uint256 escrow, uint256 credits, uint256 bonds) = handler.summedLiabilities();
        uint256 balance = handler.token().balanceOf(address(router));
        assertEq(balance, deposits + escrow + credits + bonds, "balance == deposits + escrow + credits + bonds");
        assertEq(router.totalDeposits(), deposits, "totalDeposits");
        assertEq(router.totalEscrow(), escrow, "totalEscrow");
        assertEq(router.totalCredits(), credits, "totalCredits");
        assertEq(router.totalBonds(), bonds, "totalBonds");
        assertEq(handler.settleFailures(), 0, "a valid settlement reverted");
    }

    /// @notice A batch id settles once, and a receipts root settles once.
    function invariant_batchSettlesOnce() public view {
        assertEq(handler.replaySuccesses(), 0, "batch id or receipts root settled twice");
        AutoPayLLM router = handler.router();
        for (uint256 b = 0; b < handler.batchCount(); b++) {
            bytes32 batchId = handler.batchIds(b);
            assertEq(router.batchInfo(batchId).receiptsRoot, handler.receiptsRootOf(batchId), "the first settlement stands");
        }
    }

    /// @notice A row's funds are held by at most one dispute; a dispute counts every named row once and holds
    /// exactly the rows it reports; a row named twice or out of order is refused.
    function invariant_rowHeldByAtMostOneDispute() public view {
        assertEq(handler.doubleHolds(), 0, "row held by two disputes");
        assertEq(handler.malformedDisputesAccepted(), 0, "row named twice or out of order accepted");
        assertEq(handler.disputeMismatches(), 0, "dispute totals differ from the named rows");
        assertEq(handler.unexpectedDisputeReverts(), 0, "a well-formed dispute with rows to hold reverted");
        AutoPayLLM router = handler.router();
        for (uint256 i = 0; i < handler.intervalCount(); i++) {
            bytes32 key = handler.intervalKeys(i);
            for (uint256 r = 0; r < handler.intervalRowCount(key); r++) {
                (bytes32 batchId, uint256 index) = handler.intervalRow(key, r);
                assertEq(router.rowDispute(batchId, index), handler.heldBy(batchId, index), "rowDispute");
            }
        }
    }

    /// @notice A dispute never refunds more than it holds: refund <= heldAmount, overbilled <= heldTokens, refund ==
    /// floor(heldAmount * overbilled / heldTokens); expired disputes refund nothing; payouts match.
    function invariant_refundWithinHeld() public view {
        assertEq(handler.payoutMismatches(), 0, "payout differs from refund, bond and held amount");
        assertEq(handler.overResolutions(), 0, "overbilled > held accepted, or an early expiry");
        AutoPayLLM router = handler.router();
        for (uint256 d = 0; d < handler.disputeCount(); d++) {
            bytes32 disputeId = handler.disputeIds(d);
            IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputeId);
            assertLe(info.refund, info.heldAmount, "refund <= heldAmount");
            assertLe(info.overbilledTokens, info.heldTokens, "overbilled <= heldTokens");
            assertEq(info.heldTokens, handler.heldRowsTokens(disputeId), "heldTokens == tokens of the rows it holds");
            assertEq(
                (uint256(info.arbiterDeadline) << 64) | info.governanceDeadline,
                handler.deadlinesAtOpening(disputeId),
                "a dispute keeps the deadlines it was opened with"
            );
            if (info.status == IAutoPayLLM.DisputeStatus.Resolved) {
                assertEq(
                    info.refund, uint256(info.heldAmount) * info.overbilledTokens / info.heldTokens, "refund formula"
                );
            } else {
                assertEq(info.refund, 0, "no refund unless resolved");
            }
        }
    }

    /// @notice Per interval: refunded tokens never exceed the tokens billed over it (nor refunds the amount billed);
    /// the router's refundedTokens is the sum of its resolved disputes' overbilled tokens; one open dispute at most.
    function invariant_intervalRefundWithinBilled() public view {
        AutoPayLLM router = handler.router();
        for (uint256 i = 0; i < handler.intervalCount(); i++) {
            bytes32 key = handler.intervalKeys(i);
            (address payer, uint32 provider, uint32 model, uint64 callsFrom) = handler.intervals(key);
            IAutoPayLLM.IntervalInfo memory interval = router.intervalInfo(payer, provider, model, callsFrom);
            assertLe(interval.refundedTokens, handler.billedTokens(key), "refundedTokens <= billed tokens");
            assertLe(handler.refundedAmount(key), handler.billedAmount(key), "refunds <= billed amount");
            assertEq(interval.refundedTokens, handler.refundedTokens(key), "refundedTokens == sum of overbilled");
            if (interval.openDispute != bytes32(0)) {
                assertTrue(
                    router.disputeInfo(interval.openDispute).status == IAutoPayLLM.DisputeStatus.Open, "open dispute"
                );
            }
        }
    }

    /// @notice Oracle answers follow the rule, arrive only for requests in flight, and never after the deadline; a
    /// dispute has at most maxAttempts requests and at most one in flight (its latest).
    function invariant_oracleAnswers() public view {
        assertEq(handler.oracleMismatches(), 0, "oracle outcome differs from the rule");
        assertEq(handler.forgedAnswersAccepted(), 0, "forged or superseded answer accepted");
        assertEq(handler.lateResolutions(), 0, "answer acted on after the arbiter deadline");
        UsageOracle oracle = handler.oracle();
        for (uint256 d = 0; d < handler.disputeCount(); d++) {
            assertLe(oracle.verificationOf(handler.disputeIds(d)).attempts, oracle.maxAttempts(), "attempts");
        }
        for (uint256 r = 0; r < handler.requestCount(); r++) {
            bytes32 requestId = handler.requests(r);
            IUsageOracle.Request memory request = oracle.requestOf(requestId);
            if (request.sentAt == 0) continue; // answered or superseded
            assertEq(oracle.verificationOf(request.disputeId).requestId, requestId, "in flight: the latest only");
        }
    }

    /// @notice No dispute window closes before the rule says, whatever the sequencer did; nothing released early.
    function invariant_windowNeverClosesEarly() public view {
        assertEq(handler.earlyReleases(), 0, "released before the window closed");
        AutoPayLLM router = handler.router();
        for (uint256 b = 0; b < handler.batchCount(); b++) {
            bytes32 batchId = handler.batchIds(b);
            assertTrue(router.disputeClosesAt(batchId) >= handler.referenceClosesAt(batchId), "window closes early");
        }
    }

    /// @notice The handler's own actions reach every outcome the random sequences are meant to explore: a late
    /// batch and a duplicate in one interval, a dispute naming both, an oracle answer that refunds, a governance
    /// resolution, an expiry, a malformed dispute refused.
    function test_handlerReachesEveryOutcome() public {
        // (Inputs are bounded modulo the range: 100e18 - 1 deposits 100e18, count 2 settles 3 rows.)
        for (uint256 i = 0; i < 2; i++) handler.deposit(i, 100e18 - 1);
        handler.settle(1, 2, 1); // an hour late
        handler.settle(2, 2, 3); // into the same bucket, duplicating rows of the first
        handler.settle(3, 2, 2); // three hours late
        assertEq(handler.settleFailures(), 0, "settled");
        assertEq(handler.batchCount(), 3, "batches");
        assertTrue(handler.intervalCount() > 0, "intervals recorded");
        for (uint256 s = 0; s < 8; s++) handler.openDispute(s, 7); // malformed: a row named twice
        assertEq(handler.disputesOpened(), 0, "malformed disputes refused");
        for (uint256 s = 0; s < 8; s++) handler.openDispute(s, 0);
        assertTrue(handler.disputesOpened() >= 2, "disputes opened");
        handler.fulfill(0, 0, 0); // reported usage 0: everything held is refunded
        assertEq(handler.oracleResolutions(), 1, "resolved by the oracle's answer");
        assertTrue(handler.refundsPaid() == 1, "refund paid");
        handler.fulfill(1, 0, 3); // an error: the dispute stays open for a retry
        handler.governanceResolve(1, 1);
        assertEq(handler.governanceResolutions(), 1, "resolved by governance");
        handler.expire(2, true);
        assertEq(handler.expirations(), 1, "expired");
        invariant_solvency();
        invariant_rowHeldByAtMostOneDispute();
        invariant_refundWithinHeld();
        invariant_intervalRefundWithinBilled();
        invariant_oracleAnswers();
    }
}
