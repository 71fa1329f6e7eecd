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
 * @notice Drives AutoPayLLM through random sequences of deposits, withdrawals, refill settings, settlements (with
 * valid and invalid rows), disputes, resolutions, expiries, releases, credit withdrawals and time jumps, L2
 * sequencer outages, and UsageOracle verification requests answered (or failed, malformed, forged) through a mock
 * Functions router. It is the relayer, an arbiter, the oracle's requester and governance. It also keeps ghost
 * records to check that a batch settles once, a row is disputed at most once, no window closes before the rule
 * says, and no forged Functions answer is acted on.
 */
contract Handler is TestBase {
    uint256 internal constant PRICE = 1e15; // token units per 1k tokens

    struct DisputeRef {
        bytes32 batchId;
        uint256 index;
    }

    AutoPayLLM public immutable router;
    MockERC20 public immutable token;
    address[] public payers;
    address[] public payees;

    bytes32[] public batchIds;
    mapping(bytes32 batchId => IAutoPayLLM.Charge[]) internal _rows;
    mapping(bytes32 batchId => bool[]) internal _accepted;
    DisputeRef[] public disputes;

    uint256 internal constant GRACE = 1800;

    ChainlinkMockV3Aggregator public immutable sequencer;
    MockFunctionsRouter public immutable functionsRouter;
    UsageOracle public immutable oracle;
    bool[] public sequencerDown; // status history, as recorded in the feed
    uint256[] public sequencerSince;
    bytes32[] public pendingRequests;

    uint256 public replaySuccesses;
    uint256 public doubleDisputeSuccesses;
    uint256 public earlyReleases;
    uint256 public forgedAnswersAccepted;
    uint256 public oracleResolutions;
    uint256 public calls;

    constructor() {
        token = new MockERC20("Pay", "PAY", 18);
        router = new AutoPayLLM(address(token), address(this));
        router.grantRole(router.RELAYER_ROLE(), address(this));
        router.grantRole(router.ARBITER_ROLE(), address(this));
        router.setDisputeBond(1e16);
        router.setDisputeBondBps(500);
        for (uint256 i = 0; i < 4; i++) payers.push(address(uint160(0xA000 + i)));
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
        oracle.grantRole(oracle.REQUESTER_ROLE(), address(this));
        oracle.setSource("return Functions.encodeUint256(0)");
        oracle.setUsageApi("http://127.0.0.1:8080");
        oracle.setFunctionsConfig(1, bytes32("don"), 300_000);
        oracle.setVerificationParams(1 hours, 5 minutes, 10, 100);
    }

    // ----------------------------------------------------------------- actions

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

    function settle(uint256 seed, uint256 count) external {
        calls++;
        uint256 n = bound(count, 1, 6);
        IAutoPayLLM.Charge[] memory charges = new IAutoPayLLM.Charge[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 kind = r % 16;
            address user = kind == 0 ? address(0) : payers[(r >> 8) % payers.length];
            uint32 provider = uint32(kind == 1 ? 3 : 1 + ((r >> 16) % 2));
            uint32 model = uint32(kind == 2 ? 0 : 1 + ((r >> 24) % 2));
            uint64 tokens = uint64(bound(r >> 32, 1, 5_000_000));
            uint256 price = model == 2 ? PRICE / 3 : PRICE;
            uint128 amount = uint128((uint256(tokens) * price + 999) / 1000);
            if (kind == 3) amount += 1; // over the price cap
            if (kind == 4) amount = 0;
            charges[i] = IAutoPayLLM.Charge(user, provider, model, tokens, amount);
        }
        bytes32 batchId = keccak256(abi.encode("batch", seed, batchIds.length));
        VM.recordLogs();
        router.settleBatch(batchId, charges, keccak256(abi.encode(batchId)), "bafkrei-invariant");
        Vm.Log[] memory logs = VM.getRecordedLogs();

        bool[] storage accepted = _accepted[batchId];
        for (uint256 i = 0; i < n; i++) {
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

        try router.settleBatch(batchId, charges, keccak256(abi.encode(batchId)), "replay") {
            replaySuccesses++;
        } catch {}
    }

    function dispute(uint256 batchSeed, uint256 rowSeed) external {
        calls++;
        if (batchIds.length == 0) return;
        bytes32 batchId = batchIds[batchSeed % batchIds.length];
        IAutoPayLLM.Charge[] storage rows = _rows[batchId];
        uint256 index = rowSeed % rows.length;
        if (!_accepted[batchId][index]) return;
        IAutoPayLLM.Charge memory charge = rows[index];
        bytes32[] memory proof = _proof(batchId, index);
        uint256 bond = router.disputeBondFor(charge.amount);
        token.mint(charge.user, bond);
        VM.startPrank(charge.user);
        token.approve(address(router), bond);
        try router.dispute(batchId, index, charge, proof) {
            disputes.push(DisputeRef(batchId, index));
            token.mint(charge.user, bond);
            token.approve(address(router), bond);
            try router.dispute(batchId, index, charge, proof) {
                doubleDisputeSuccesses++;
            } catch {}
            // As the payer would (and does, through `agentgpt dispute`): ask the oracle at once, most of the time.
            if (rowSeed % 4 != 0) {
                try oracle.requestVerification(batchId, index, charge, proof) returns (bytes32 requestId) {
                    pendingRequests.push(requestId);
                } catch {}
            }
        } catch {}
        VM.stopPrank();
    }

    function resolve(uint256 seed, uint256 refund) external {
        calls++;
        if (disputes.length == 0) return;
        DisputeRef memory ref = disputes[seed % disputes.length];
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(ref.batchId, ref.index);
        if (info.status != IAutoPayLLM.DisputeStatus.Open) return;
        try router.resolveDispute(ref.batchId, ref.index, uint128(bound(refund, 0, info.amount))) {}
        catch {
            router.refundExpiredDispute(ref.batchId, ref.index);
        }
    }

    function expire(uint256 seed) external {
        calls++;
        if (disputes.length == 0) return;
        DisputeRef memory ref = disputes[seed % disputes.length];
        IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(ref.batchId, ref.index);
        if (info.status != IAutoPayLLM.DisputeStatus.Open) return;
        uint256 expiresAt = uint256(info.openedAt) + router.arbiterTimeout() + router.governanceTimeout();
        if (block.timestamp < expiresAt) VM.warp(expiresAt);
        router.refundExpiredDispute(ref.batchId, ref.index);
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

    /// @notice The L2 sequencer goes down (now and then) or comes back up (a feed round only on a change).
    function toggleSequencer(uint256 seed) external {
        calls++;
        bool down = sequencerDown[sequencerDown.length - 1];
        if (!down && seed % 3 != 0) return;
        _recordStatus(!down, block.timestamp);
    }

    /// @notice Asks the oracle to verify a random open dispute.
    function requestVerification(uint256 seed) external {
        calls++;
        if (disputes.length == 0) return;
        DisputeRef memory ref = disputes[seed % disputes.length];
        IAutoPayLLM.Charge memory charge = _rows[ref.batchId][ref.index];
        bytes32[] memory proof = _proof(ref.batchId, ref.index);
        try oracle.requestVerification(ref.batchId, ref.index, charge, proof) returns (bytes32 requestId) {
            pendingRequests.push(requestId);
        } catch {}
    }

    /// @notice The DON answers a pending request (a usage figure, an error, a malformed response), or a forger tries.
    function fulfill(uint256 seed, uint256 reported, uint8 kind) external {
        calls++;
        kind = kind % 5;
        if (kind == 4) {
            bytes32 forged = keccak256(abi.encode("forged", seed));
            try functionsRouter.fulfillUnchecked(address(oracle), forged, abi.encode(uint256(0)), "") {
                forgedAnswersAccepted++;
            } catch {}
            return;
        }
        if (pendingRequests.length == 0) return;
        uint256 k = seed % pendingRequests.length;
        bytes32 requestId = pendingRequests[k];
        pendingRequests[k] = pendingRequests[pendingRequests.length - 1];
        pendingRequests.pop();
        bytes memory response = abi.encode(bound(reported, 0, 6_000_000));
        bytes memory err;
        if (kind == 1) {
            response = "";
            err = bytes("usage API answered HTTP 503");
        }
        if (kind == 2) response = abi.encode(reported, reported);
        IUsageOracle.Request memory request = oracle.requestOf(requestId);
        try functionsRouter.fulfill(requestId, response, err) {
            // A superseded request (retried after its timeout) must not be answered.
            if (request.sentAt == 0) forgedAnswersAccepted++;
            else if (router.disputeInfo(request.batchId, request.index).status == IAutoPayLLM.DisputeStatus.Resolved) {
                oracleResolutions++;
            }
        } catch {}
    }

    function withdrawCredits(uint256 which) external {
        calls++;
        uint32 provider = uint32(1 + (which % payees.length));
        if (router.credits(provider) == 0) return;
        VM.prank(payees[provider - 1]);
        router.withdrawCredits(provider);
    }

    function warp(uint256 seconds_) external {
        calls++;
        // Short steps keep dispute windows (1 h) and oracle deadlines open often enough to be exercised;
        // release() and expire() jump as far as they need.
        VM.warp(block.timestamp + bound(seconds_, 1, 2 hours));
    }

    // -------------------------------------------------------------- ghost views

    /// @notice When the rule (written out, over the whole recorded sequencer history) closes `batchId`'s window.
    function referenceClosesAt(bytes32 batchId) public view returns (uint256) {
        IAutoPayLLM.BatchInfo memory info = router.batchInfo(batchId);
        return ReferenceSequencerWindow.closesAt(sequencerDown, sequencerSince, GRACE, info.settledAt, info.releaseAt);
    }

    function pendingRequestCount() external view returns (uint256) {
        return pendingRequests.length;
    }

    function batchCount() external view returns (uint256) {
        return batchIds.length;
    }

    function _recordStatus(bool down, uint256 at) internal {
        sequencerDown.push(down);
        sequencerSince.push(at);
        sequencer.updateRoundData(uint80(sequencerDown.length), down ? int256(1) : int256(0), at, at);
    }

    /// @notice Liabilities summed from per-account views, independent of the contract's own totals.
    function summedLiabilities()
        external
        view
        returns (uint256 deposits, uint256 escrow, uint256 credits, uint256 bonds)
    {
        for (uint256 i = 0; i < payers.length; i++) deposits += router.balanceOf(payers[i]);
        for (uint32 p = 1; p <= payees.length; p++) credits += router.credits(p);
        for (uint256 b = 0; b < batchIds.length; b++) {
            (, uint256[] memory amounts) = router.batchShares(batchIds[b]);
            for (uint256 k = 0; k < amounts.length; k++) escrow += amounts[k];
        }
        for (uint256 d = 0; d < disputes.length; d++) {
            IAutoPayLLM.DisputeInfo memory info = router.disputeInfo(disputes[d].batchId, disputes[d].index);
            if (info.status == IAutoPayLLM.DisputeStatus.Open) {
                escrow += info.amount;
                bonds += info.bond;
            }
        }
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

    /// @notice token balance of the router == deposits + escrow + credits + bonds, summed account by account.
    function invariant_solvency() public view {
        AutoPayLLM router = handler.router();
        (uint256 deposits, uint256 escrow, uint256 credits, uint256 bonds) = handler.summedLiabilities();
        uint256 balance = handler.token().balanceOf(address(router));
        assertEq(balance, deposits + escrow + credits + bonds, "balance == deposits + escrow + credits + bonds");
        assertEq(router.totalDeposits(), deposits, "totalDeposits");
        assertEq(router.totalEscrow(), escrow, "totalEscrow");
        assertEq(router.totalCredits(), credits, "totalCredits");
        assertEq(router.totalBonds(), bonds, "totalBonds");
    }

    /// @notice A batch id never settles twice.
    function invariant_batchSettlesOnce() public view {
        assertEq(handler.replaySuccesses(), 0, "replayed batch settled");
    }

    /// @notice A row is never disputed twice.
    function invariant_noRowDisputedTwice() public view {
        assertEq(handler.doubleDisputeSuccesses(), 0, "row disputed twice");
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

    /// @notice Only the Functions router's answers to requests in flight are ever acted on.
    function invariant_noForgedOracleAnswer() public view {
        assertEq(handler.forgedAnswersAccepted(), 0, "forged or superseded answer accepted");
    }

    /// @notice The handler's own actions can take a dispute through an oracle answer to its resolution (so the
    /// random sequences above can too): deposit, settle, dispute (which asks the oracle), the DON answers.
    function test_handlerReachesOracleResolution() public {
        for (uint256 i = 0; i < 4; i++) handler.deposit(i, 50e18);
        handler.settle(1, 5);
        for (uint256 row = 1; row < 6; row++) handler.dispute(0, row);
        assertTrue(handler.pendingRequestCount() > 0, "the oracle was asked");
        handler.fulfill(0, 1, 0);
        assertEq(handler.oracleResolutions(), 1, "a dispute resolved by the oracle's answer");
    }
}
