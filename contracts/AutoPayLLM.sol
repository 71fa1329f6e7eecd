// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {IAutoPayLLM} from "./interfaces/IAutoPayLLM.sol";
import {IDisputeVerifier} from "./interfaces/IDisputeVerifier.sol";
import {ChargeMerkle} from "./libraries/ChargeMerkle.sol";
import {SequencerWindow} from "./libraries/SequencerWindow.sol";

/**
 * @title AutoPayLLM
 * @notice Pay-per-use router for LLM calls routed by LiteLLM. A relayer settles batches of aggregated charge rows
 * (payer, provider, model); each row is checked against the model's governed price cap and daily budget and the
 * payer's own daily cap, then paid from the payer's deposit (topped up from the payer's ERC-20 allowance when
 * short or below the payer's auto-refill threshold). Every batch commits the usage bucket (call-time interval) in
 * which its calls started. Charged funds stay in escrow for the dispute window.
 *
 * Disputes are over intervals, not rows: a payer names every settled row of one provider, model and usage bucket
 * (with Merkle proofs against their batches' rows roots), posts a bond, and the rows still in an open window are
 * held. The arbiter (the UsageOracle) compares all that was billed for the interval with what the provider reports
 * for the same interval, and refunds the over-billed tokens from the held rows, whatever else was billed: a row
 * settled twice, an inflated row or a row for calls that never happened is refunded even next to honest usage.
 * Governance judges when the arbiter cannot, within deadlines fixed when the dispute opens; past the last one the
 * charge stands and the bond goes back. After the window anyone releases the rest to provider credits, which each
 * provider's registered payee withdraws.
 *
 * Invariant: `paymentToken.balanceOf(this) >= totalDeposits + totalEscrow + totalCredits + totalBonds`, with
 * equality unless tokens were sent to the contract outside its functions (recoverable with {sweep}).
 *
 * @dev Supported tokens: any ERC-20, including tokens that return no bool (USDT-style). Incoming transfers are
 * credited by balance difference, so fee-on-transfer tokens are accounted for what actually arrives. Rebasing
 * tokens are not supported. Per-payer daily spend is tracked in 96 bits: a payer cannot be charged more than
 * 2^96 - 1 token units in one UTC day.
 */
// The interval disputes need their own state (receipts roots, disputes, intervals, held rows, verifier, feed start).
// solhint-disable-next-line max-states-count
contract AutoPayLLM is IAutoPayLLM, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------- types

    /// @dev Hot per-payer state, one storage slot: read and written once per payer per batch.
    struct Account {
        uint128 deposit;
        uint96 spentToday;
        uint32 day;
    }

    /// @dev Per-payer settings, one storage slot: read once per payer per batch.
    struct Settings {
        uint128 dailyCap;
        uint128 refillThreshold;
    }

    struct ModelConfig {
        uint128 maxPricePer1kTokens;
        uint128 dailyLimit;
    }

    struct ModelUsage {
        uint128 spentToday;
        uint32 day;
    }

    /// @dev Working state of one `settleBatch` call, kept in memory so each storage slot is written once.
    // solhint-disable-next-line gas-struct-packing
    struct SettleContext {
        uint256 today;
        uint256 providerCount;
        uint256 modelCount;
        address user; // payer of the current run of rows, and that payer's state updated in memory:
        uint256 deposit;
        uint256 spentToday;
        uint256 dailyCap;
        uint256 refillThreshold;
        bool refillExhausted; // a pull for this payer already came back short in this batch
        uint256 pulled; // total pulled from allowances in this batch
        uint256 charged; // total charged in this batch
        uint256[] providerTotals; // by provider id
        uint256[] modelSpent; // by model id: spend today + 1 once loaded, 0 before
        uint256[] modelPrice; // by model id, once loaded
        uint256[] modelLimit; // by model id, once loaded
    }

    /// @dev One row read from calldata, validated; reused across the rows of a batch.
    struct Row {
        address user;
        uint256 provider;
        uint256 model;
        uint256 tokens;
        uint256 amount;
    }

    // ------------------------------------------------------------ constants

    /// @notice May submit batches. Cannot move funds in any other way.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @notice May resolve disputes until the arbiter deadline (the oracle adapter).
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    /// @notice May pause and unpause settlement and release. Cannot move funds.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    uint64 public constant DEFAULT_DISPUTE_WINDOW = 3600;
    uint64 public constant MIN_DISPUTE_WINDOW = 60;
    uint64 public constant MAX_DISPUTE_WINDOW = 30 days;
    uint64 public constant MIN_TIMEOUT = 1 hours;
    uint64 public constant MAX_TIMEOUT = 90 days;
    uint64 public constant MAX_SEQUENCER_GRACE = 7 days;
    uint16 public constant MAX_BOND_BPS = 5000;
    uint32 public constant DEFAULT_USAGE_BUCKET = 1 hours;
    uint32 public constant MIN_USAGE_BUCKET = 1 minutes;
    uint32 public constant MAX_USAGE_BUCKET = 1 days;
    /// @notice Rows one dispute may name (each is proven; the calldata bounds the loop).
    uint256 public constant MAX_DISPUTE_ROWS = 1024;
    uint256 public constant MAX_BATCH_ROWS = 4096;
    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_NAME_LENGTH = 64;

    // ---------------------------------------------------------------- state

    /// @notice The ERC-20 every charge, deposit, bond and credit is denominated in.
    IERC20 public immutable paymentToken;

    uint64 public disputeWindow = DEFAULT_DISPUTE_WINDOW;
    uint64 public arbiterTimeout = 3 days;
    uint64 public governanceTimeout = 14 days;
    uint16 public disputeBondBps;
    /// @notice Length of the usage buckets that batches commit and disputes compare (seconds); fixed once a batch
    /// settled, so that the intervals of all batches line up.
    uint32 public usageBucket = DEFAULT_USAGE_BUCKET;
    bool private _bucketLocked;
    uint32 private _providerCount;
    uint32 private _modelCount;
    uint256 public disputeBond;
    /// @notice Chainlink L2 sequencer-uptime feed; zero on chains without one (no window extension).
    AggregatorV3Interface public sequencerUptimeFeed;
    /// @notice Seconds a dispute window stays open after the sequencer came back up from an outage that overlapped it.
    uint64 public sequencerGracePeriod;
    /// @dev When the current feed was set, and its latest round then: batches settled before read it from there.
    uint40 private _feedSince;
    uint80 private _feedStartRound;
    /// @notice Called when a dispute opens to start its verification (the UsageOracle); zero: nobody is called.
    IDisputeVerifier public verifier;

    uint256 public totalDeposits;
    uint256 public totalEscrow;
    uint256 public totalCredits;
    uint256 public totalBonds;

    mapping(address user => Account) private _accounts;
    mapping(address user => Settings) private _settings;
    mapping(address user => uint128) private _refillAmount;

    mapping(bytes32 nameHash => uint32) private _providerIds;
    mapping(uint32 provider => address) private _payees;
    mapping(uint32 provider => string) private _providerNames;
    mapping(uint32 provider => uint256) private _credits;

    mapping(bytes32 nameHash => uint32) private _modelIds;
    mapping(uint32 model => string) private _modelNames;
    mapping(uint32 model => ModelConfig) private _modelConfigs;
    mapping(uint32 model => ModelUsage) private _modelUsage;

    mapping(bytes32 batchId => BatchInfo) private _batches;
    /// @dev batchId => k => (provider << 224 | amount), k < shareCount: what release credits to each provider.
    mapping(bytes32 batchId => mapping(uint256 => uint256)) private _shares;
    mapping(bytes32 receiptsRoot => bytes32 batchId) private _receiptsRoots;
    mapping(bytes32 disputeId => DisputeInfo) private _disputes;
    mapping(bytes32 intervalKey => IntervalInfo) private _intervals;
    /// @dev The dispute that holds (or held) a row's funds; a row's funds are held at most once.
    mapping(bytes32 batchId => mapping(uint256 index => bytes32 disputeId)) private _rowDisputes;

    // ---------------------------------------------------------- constructor

    /**
     * @param token The payment token.
     * @param admin Receives DEFAULT_ADMIN_ROLE, i.e. every governance power (the timelock in production).
     */
    constructor(address token, address admin) {
        if (token == address(0) || admin == address(0)) revert AutoPayLLMZeroAddress();
        paymentToken = IERC20(token);
        // Disputes cost a bond by default: one whole token (governance sets the figure that covers the oracle).
        uint256 decimals = 18;
        try IERC20Metadata(token).decimals() returns (uint8 value) {
            decimals = value;
        } catch {} // solhint-disable-line no-empty-blocks
        disputeBond = decimals > 36 ? 0 : 10 ** decimals;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ========================================================== settlement

    /**
     * @notice Settles one batch of charge rows whose calls started in the usage bucket that contains the settlement
     * time, like {settleBatchAt} with `callsFrom` = the start of the current bucket. For relayers that settle as
     * calls happen; a relayer that may settle late (outages, pauses, reorgs) must use {settleBatchAt}, or its rows
     * are compared with the wrong interval in a dispute.
     *
     * Requirements and events: as {settleBatchAt}.
     */
    function settleBatch(bytes32 batchId, Charge[] calldata charges, bytes32 receiptsRoot, string calldata dataCid)
        external
        nonReentrant
    {
        _settle(batchId, charges, receiptsRoot, dataCid, block.timestamp - (block.timestamp % usageBucket));
    }

    /**
     * @notice Settles one batch of charge rows for calls that started in the usage bucket
     * `[callsFrom, callsFrom + usageBucket)`. Each row is checked and charged independently: a row that breaks a
     * rule is skipped with a {RowRejected} event and the rest of the batch settles. Charged funds are escrowed until
     * the dispute window ends. A batch settled late is judged in a dispute exactly like one settled on time: by the
     * interval it commits, never by its settlement time.
     * @param batchId Content-derived id; a batch id settles at most once.
     * @param charges Rows (payer, provider, model, tokens, amount). Rows of the same payer should be contiguous:
     * each run of a payer's rows reads and writes that payer's state once.
     * @param receiptsRoot Merkle root of the batch's receipts (each leaf carrying its row index); settles once.
     * @param dataCid IPFS CID of the batch file (receipts, rows, trees).
     * @param callsFrom Start of the usage bucket in which every call of the batch started: a multiple of
     * `usageBucket`, not in the future.
     *
     * Requirements:
     * - caller has RELAYER_ROLE; not paused; `batchId` non-zero and never settled; `receiptsRoot` non-zero and
     *   never settled;
     * - 1 to MAX_BATCH_ROWS rows; `dataCid` of 1 to MAX_CID_LENGTH bytes; `callsFrom` as above.
     *
     * Emits {RowRejected} per rejected row, {AutoRefilled} per allowance pull, then {BatchSettled}.
     */
    function settleBatchAt(
        bytes32 batchId,
        Charge[] calldata charges,
        bytes32 receiptsRoot,
        string calldata dataCid,
        uint64 callsFrom
    ) external nonReentrant {
        if (callsFrom % usageBucket != 0 || callsFrom > block.timestamp) {
            revert AutoPayLLMInvalidInterval(callsFrom, usageBucket);
        }
        _settle(batchId, charges, receiptsRoot, dataCid, callsFrom);
    }

    /**
     * @notice Moves a batch's undisputed escrow to its providers' credits once the dispute window is over.
     * Disputed rows stay escrowed until resolved.
     * @param batchId The batch to release. Anyone may call.
     *
     * Requirements: the batch is escrowed, its dispute window has closed, and the contract is not paused.
     *
     * Emits {ProviderCredited} per provider and {BatchReleased}.
     */
    function release(bytes32 batchId) external whenNotPaused nonReentrant {
        BatchInfo storage batch = _batches[batchId];
        if (batch.status != BatchStatus.Escrowed) revert AutoPayLLMBatchNotEscrowed(batchId, batch.status);
        uint256 closesAt = _disputeClosesAt(batch);
        if (block.timestamp < closesAt) revert AutoPayLLMWindowOpen(batchId, closesAt);

        batch.status = BatchStatus.Released;
        uint256 count = batch.shareCount;
        uint256 total;
        mapping(uint256 => uint256) storage shares = _shares[batchId];
        for (uint256 k; k < count; ++k) {
            uint256 packed = shares[k];
            delete shares[k];
            uint32 provider = uint32(packed >> 224);
            uint256 amount = packed & type(uint224).max;
            if (amount == 0) continue; // fully disputed
            _credits[provider] += amount;
            total += amount;
            emit ProviderCredited(batchId, provider, amount);
        }
        totalEscrow -= total;
        totalCredits += total;
        emit BatchReleased(batchId, total);
    }

    // ============================================================== payers

    /**
     * @notice Adds `amount` of the payment token to the caller's deposit (needs an allowance to this contract).
     * @dev Credits what actually arrives (fee-on-transfer tokens).
     *
     * Requirements: `amount` > 0.
     *
     * Emits {Deposited}.
     */
    function deposit(uint256 amount) external nonReentrant {
        _deposit(msg.sender, msg.sender, amount);
    }

    /**
     * @notice Adds `amount` to `user`'s deposit, paid by the caller (a treasury funding its payers).
     *
     * Requirements: `user` non-zero; `amount` > 0.
     *
     * Emits {Deposited}.
     */
    function depositFor(address user, uint256 amount) external nonReentrant {
        if (user == address(0)) revert AutoPayLLMZeroAddress();
        _deposit(user, msg.sender, amount);
    }

    /**
     * @notice Deposits with an EIP-2612 permit, so a payer funds the router in one transaction.
     * @dev A permit front-run by a third party (same signature already used) does not block the deposit as long
     * as the allowance is in place.
     *
     * Requirements: a valid permit for at least `amount` or an existing allowance; `amount` > 0.
     *
     * Emits {Deposited}.
     */
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external nonReentrant {
        // A failed permit (already used by a front-runner, or unsupported) is not fatal: the deposit below still
        // needs, and checks, the allowance.
        // solhint-disable-next-line no-empty-blocks
        try IERC20Permit(address(paymentToken)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(msg.sender, msg.sender, amount);
    }

    /**
     * @notice Withdraws `amount` of the caller's un-escrowed deposit. Works while paused.
     *
     * Requirements: `amount` > 0 and at most the caller's deposit.
     *
     * Emits {Withdrawn}.
     */
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert AutoPayLLMZeroAmount();
        Account storage account = _accounts[msg.sender];
        uint256 available = account.deposit;
        if (amount > available) revert AutoPayLLMInsufficientDeposit(msg.sender, available, amount);
        // Cannot underflow: amount <= available.
        unchecked {
            account.deposit = uint128(available - amount);
        }
        totalDeposits -= amount;
        emit Withdrawn(msg.sender, amount);
        paymentToken.safeTransfer(msg.sender, amount);
    }

    /**
     * @notice Sets the caller's own daily spending ceiling (UTC days). Zero means no cap.
     *
     * Requirements: `cap` fits in 128 bits.
     *
     * Emits {DailyCapSet}.
     */
    function setDailyCap(uint256 cap) external {
        if (cap > type(uint128).max) revert AutoPayLLMValueTooLarge(cap, type(uint128).max);
        _settings[msg.sender].dailyCap = uint128(cap);
        emit DailyCapSet(msg.sender, cap);
    }

    /**
     * @notice Configures auto-refill: when a charge would leave the caller's deposit below `threshold` (or the
     * deposit is short), settlement pulls from the caller's allowance at least `amount` (and at least what the
     * caller's remaining rows in that batch need). Both zero turns refills off; shortfalls are still pulled.
     *
     * Emits {AutoRefillSet}.
     */
    function setAutoRefill(uint128 threshold, uint128 amount) external {
        _settings[msg.sender].refillThreshold = threshold;
        _refillAmount[msg.sender] = amount;
        emit AutoRefillSet(msg.sender, threshold, amount);
    }

    // ============================================================ disputes

    /**
     * @notice Disputes what the caller was billed for one provider and model over one call interval (a usage
     * bucket). `rows` names settled rows of that payer, provider, model and interval, each with its proof; all of
     * them count toward the billed tokens, and those whose batch is still escrowed within its dispute window (and
     * whose funds no earlier dispute held) are held in escrow until the dispute is resolved. The arbiter then
     * compares the billed tokens with the provider's report for the interval and refunds the difference from the
     * held rows. Name every row of the interval, released ones included: a row left out counts as never billed, so
     * it can only lower the refund.
     * @dev The verification starts at once when a verifier is set (a failure to start is not fatal: anyone may
     * start it on the verifier). The bond is taken from the caller's deposit, the shortfall from the allowance.
     * @param rows Named rows, strictly increasing by (batchId, index), so none counts twice.
     * @return disputeId `keccak256(abi.encode(intervalKey, n))`, n the interval's dispute count before this one.
     *
     * Requirements:
     * - 1 to MAX_DISPUTE_ROWS rows, strictly ordered, each proven against a settled batch's rows root;
     * - every row has the caller as payer, and the provider, model and interval of the first row;
     * - no dispute of this interval is open; at least one row can be held.
     *
     * Emits {DisputeRowHeld} per held row and {DisputeOpened}.
     */
    function dispute(RowRef[] calldata rows) external nonReentrant returns (bytes32 disputeId) {
        uint256 count = rows.length;
        if (count == 0) revert AutoPayLLMNoDisputeRows();
        if (count > MAX_DISPUTE_ROWS) revert AutoPayLLMTooManyDisputeRows(count, MAX_DISPUTE_ROWS);
        Charge calldata first = rows[0].charge;
        if (msg.sender != first.user) revert AutoPayLLMNotRowPayer(msg.sender, first.user);
        uint40 callsFrom = _batches[rows[0].batchId].callsFrom;
        bytes32 key = _intervalKey(first.user, first.provider, first.model, callsFrom);
        IntervalInfo storage interval = _intervals[key];
        if (interval.openDispute != bytes32(0)) revert AutoPayLLMIntervalDisputeOpen(interval.openDispute);
        disputeId = keccak256(abi.encode(key, interval.disputes));

        DisputeInfo storage record = _disputes[disputeId];
        _nameRows(record, disputeId, rows, callsFrom);
        if (record.heldAmount == 0) revert AutoPayLLMNothingToHold();

        uint128 bond = uint128(disputeBondFor(record.heldAmount));
        uint40 now_ = uint40(block.timestamp);
        uint40 arbiterDeadline = now_ + uint40(arbiterTimeout);
        record.payer = first.user;
        record.provider = first.provider;
        record.model = first.model;
        record.status = DisputeStatus.Open;
        record.callsFrom = callsFrom;
        record.callsTo = callsFrom + usageBucket;
        record.openedAt = now_;
        record.arbiterDeadline = arbiterDeadline;
        record.governanceDeadline = arbiterDeadline + uint40(governanceTimeout);
        record.rows = uint32(count);
        record.bond = bond;
        record.priorRefundedTokens = interval.refundedTokens;
        interval.openDispute = disputeId;
        ++interval.disputes;
        totalBonds += bond;
        emit DisputeOpened(disputeId, first.user, first.provider, first.model, callsFrom, count, bond);
        _collect(first.user, bond);

        IDisputeVerifier verifier_ = verifier;
        if (address(verifier_) != address(0)) {
            // Not fatal: anyone may start the verification on the verifier later.
            // solhint-disable-next-line no-empty-blocks
            try verifier_.requestVerification(disputeId) {} catch {}
        }
    }

    /**
     * @notice Resolves an open dispute: of the held rows, the share of `overbilledTokens` in their tokens is refunded
     * to the payer's deposit (`heldAmount * overbilledTokens / heldTokens`, rounded down), the rest goes to the
     * provider's credits. The bond returns to the payer when `overbilledTokens` > 0, else it goes to the provider.
     * @dev Before the dispute's `arbiterDeadline` the ARBITER_ROLE (the UsageOracle) may resolve; governance
     * (DEFAULT_ADMIN_ROLE) may resolve until its `governanceDeadline`. Both were fixed when the dispute opened.
     *
     * Requirements: the dispute is open; the caller may resolve now; `overbilledTokens` <= the held tokens.
     *
     * Emits {DisputeResolved}.
     */
    function resolveDispute(bytes32 disputeId, uint128 overbilledTokens) external nonReentrant {
        DisputeInfo storage record = _openDispute(disputeId);
        uint256 arbiterDeadline = record.arbiterDeadline;
        uint256 governanceDeadline = record.governanceDeadline;
        bool allowed = (block.timestamp < arbiterDeadline && hasRole(ARBITER_ROLE, msg.sender))
            || (block.timestamp < governanceDeadline && hasRole(DEFAULT_ADMIN_ROLE, msg.sender));
        if (!allowed) revert AutoPayLLMNotResolver(msg.sender, arbiterDeadline, governanceDeadline);
        uint128 held = record.heldTokens;
        if (overbilledTokens > held) revert AutoPayLLMOverbilledTooLarge(overbilledTokens, held);
        // Cannot overflow: both factors < 2^128; the quotient <= heldAmount.
        uint128 refund = uint128((uint256(record.heldAmount) * overbilledTokens) / held);
        record.status = DisputeStatus.Resolved;
        record.overbilledTokens = overbilledTokens;
        record.refund = refund;
        _intervals[_keyOf(record)].refundedTokens += overbilledTokens;
        _close(disputeId, record, refund, overbilledTokens, overbilledTokens != 0);
    }

    /**
     * @notice Closes a dispute that nobody judged by its governance deadline: the charge stands (the held funds go
     * to the provider's credits) and the bond goes back to the payer, who was not proven wrong. Anyone may call.
     *
     * Requirements: the dispute is open and its `governanceDeadline` has passed.
     *
     * Emits {DisputeResolved} (no refund, bond returned).
     */
    function settleExpiredDispute(bytes32 disputeId) external nonReentrant {
        DisputeInfo storage record = _openDispute(disputeId);
        uint256 expiresAt = record.governanceDeadline;
        if (block.timestamp < expiresAt) revert AutoPayLLMDisputeNotExpired(disputeId, expiresAt);
        record.status = DisputeStatus.Expired;
        _close(disputeId, record, 0, 0, true);
    }

    // =========================================================== providers

    /**
     * @notice Pays the provider's credits to its registered payee. Works while paused.
     *
     * Requirements: the caller is the provider's payee; credits are non-zero.
     *
     * Emits {CreditsWithdrawn}.
     */
    function withdrawCredits(uint32 provider) external nonReentrant {
        address payee = _payees[provider];
        if (payee == address(0)) revert AutoPayLLMUnknownProvider(provider);
        if (msg.sender != payee) revert AutoPayLLMNotPayee(provider, msg.sender);
        uint256 amount = _credits[provider];
        if (amount == 0) revert AutoPayLLMNothingToWithdraw(provider);
        _credits[provider] = 0;
        totalCredits -= amount;
        emit CreditsWithdrawn(provider, payee, amount);
        paymentToken.safeTransfer(payee, amount);
    }

    // ========================================================== governance

    /**
     * @notice Registers a provider under a unique name; ids start at 1.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; name of 1 to MAX_NAME_LENGTH bytes, not yet registered; non-zero payee.
     *
     * Emits {ProviderRegistered}.
     */
    function registerProvider(string calldata name, address payee)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint32 id)
    {
        bytes32 key = _nameKey(name);
        if (payee == address(0)) revert AutoPayLLMZeroAddress();
        id = _providerIds[key];
        if (id != 0) revert AutoPayLLMProviderExists(name, id);
        id = ++_providerCount;
        _providerIds[key] = id;
        _payees[id] = payee;
        _providerNames[id] = name;
        emit ProviderRegistered(id, name, payee);
    }

    /**
     * @notice Changes where a provider's credits are paid.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; known provider; non-zero payee.
     *
     * Emits {ProviderPayeeSet}.
     */
    function setProviderPayee(uint32 provider, address payee) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (provider == 0 || provider > _providerCount) revert AutoPayLLMUnknownProvider(provider);
        if (payee == address(0)) revert AutoPayLLMZeroAddress();
        _payees[provider] = payee;
        emit ProviderPayeeSet(provider, payee);
    }

    /**
     * @notice Sets a model's daily budget (token units per UTC day, all payers together); zero means none.
     * Registers the model if new.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; valid name; `dailyLimit` fits in 128 bits.
     *
     * Emits {ModelBudgetSet} (and {ModelRegistered} for a new model).
     */
    function setModelBudget(string calldata model, uint256 dailyLimit) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (dailyLimit > type(uint128).max) revert AutoPayLLMValueTooLarge(dailyLimit, type(uint128).max);
        uint32 id = _modelOrRegister(model);
        _modelConfigs[id].dailyLimit = uint128(dailyLimit);
        emit ModelBudgetSet(id, model, dailyLimit);
    }

    /**
     * @notice Sets a model's price cap in token units per 1,000 tokens; a model is billable only while its cap is
     * non-zero. Registers the model if new.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; valid name; price fits in 128 bits.
     *
     * Emits {ModelPriceSet} (and {ModelRegistered} for a new model).
     */
    function setModelPrice(string calldata model, uint256 maxPricePer1kTokens) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (maxPricePer1kTokens > type(uint128).max) {
            revert AutoPayLLMValueTooLarge(maxPricePer1kTokens, type(uint128).max);
        }
        uint32 id = _modelOrRegister(model);
        _modelConfigs[id].maxPricePer1kTokens = uint128(maxPricePer1kTokens);
        emit ModelPriceSet(id, model, maxPricePer1kTokens);
    }

    /**
     * @notice Sets the dispute window for batches settled from now on (settled batches keep theirs).
     *
     * Requirements: DEFAULT_ADMIN_ROLE; MIN_DISPUTE_WINDOW <= seconds_ <= MAX_DISPUTE_WINDOW.
     *
     * Emits {DisputeWindowSet}.
     */
    function setDisputeWindow(uint64 seconds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (seconds_ < MIN_DISPUTE_WINDOW || seconds_ > MAX_DISPUTE_WINDOW) {
            revert AutoPayLLMDisputeWindowOutOfRange(seconds_, MIN_DISPUTE_WINDOW, MAX_DISPUTE_WINDOW);
        }
        disputeWindow = seconds_;
        emit DisputeWindowSet(seconds_);
    }

    /**
     * @notice Sets the fixed part of the dispute bond (token units).
     *
     * Requirements: DEFAULT_ADMIN_ROLE; `amount` < 2^127.
     *
     * Emits {DisputeBondSet}.
     */
    function setDisputeBond(uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        // Half of the 128-bit bond field: the proportional part (<= 50% of a 128-bit amount) takes the other half.
        uint256 max = type(uint128).max >> 1;
        if (amount > max) revert AutoPayLLMValueTooLarge(amount, max);
        disputeBond = amount;
        emit DisputeBondSet(amount, disputeBondBps);
    }

    /**
     * @notice Sets the proportional part of the dispute bond, in basis points of the disputed amount.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; `bps` <= MAX_BOND_BPS.
     *
     * Emits {DisputeBondSet}.
     */
    function setDisputeBondBps(uint16 bps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bps > MAX_BOND_BPS) revert AutoPayLLMBondBpsTooLarge(bps, MAX_BOND_BPS);
        disputeBondBps = bps;
        emit DisputeBondSet(disputeBond, bps);
    }

    /**
     * @notice Sets how long the arbiter has to resolve a dispute, then how long governance has after that before the
     * charge stands by default. Disputes already open keep the deadlines they were opened with.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; each within MIN_TIMEOUT..MAX_TIMEOUT.
     *
     * Emits {DisputeTimeoutsSet}.
     */
    function setDisputeTimeouts(uint64 arbiterTimeout_, uint64 governanceTimeout_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _checkTimeout(arbiterTimeout_);
        _checkTimeout(governanceTimeout_);
        arbiterTimeout = arbiterTimeout_;
        governanceTimeout = governanceTimeout_;
        emit DisputeTimeoutsSet(arbiterTimeout_, governanceTimeout_);
    }

    /**
     * @notice Sets the length of the usage buckets (seconds): every batch commits the bucket its calls started in,
     * and a dispute compares one bucket. Match the provider usage reports' granularity. Fixed once a batch settled.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; no batch settled yet; MIN_USAGE_BUCKET <= seconds_ <= MAX_USAGE_BUCKET and
     * a divisor of one day (so buckets line up with days).
     *
     * Emits {UsageBucketSet}.
     */
    function setUsageBucket(uint32 seconds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_bucketLocked) revert AutoPayLLMUsageBucketLocked();
        if (seconds_ < MIN_USAGE_BUCKET || seconds_ > MAX_USAGE_BUCKET || 1 days % seconds_ != 0) {
            revert AutoPayLLMUsageBucketOutOfRange(seconds_, MIN_USAGE_BUCKET, MAX_USAGE_BUCKET);
        }
        usageBucket = seconds_;
        emit UsageBucketSet(seconds_);
    }

    /**
     * @notice Sets the contract called to start a dispute's verification when it opens (the UsageOracle); zero
     * turns the call off.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; `verifier_` is zero or a contract.
     *
     * Emits {VerifierSet}.
     */
    function setVerifier(address verifier_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (verifier_ != address(0) && verifier_.code.length == 0) revert AutoPayLLMZeroAddress();
        verifier = IDisputeVerifier(verifier_);
        emit VerifierSet(verifier_);
    }

    /**
     * @notice Sets the L2 sequencer-uptime feed that extends dispute windows over sequencer outages (payers cannot
     * dispute while the sequencer is down), and the grace period after it comes back up. Zero `feed` turns the
     * extension off (chains without a sequencer feed). Applies to every escrowed batch: one settled before the feed
     * was set reads the feed's history from the round that was latest when it was set.
     * @dev While a window overlaps an outage it cannot close; it then closes no earlier than `gracePeriod` after the
     * sequencer is back up. Each batch reads the feed forward from the round that was latest when it settled, so a
     * window that closed stays closed however many status changes follow. See {SequencerWindow}.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; `gracePeriod` <= MAX_SEQUENCER_GRACE (and zero when `feed` is zero); a
     * non-zero `feed` answers `latestRoundData` with a status (0 up, 1 down) and a non-zero `startedAt`.
     *
     * Emits {SequencerUptimeFeedSet}.
     */
    function setSequencerUptimeFeed(address feed, uint64 gracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint64 maxGrace = feed == address(0) ? 0 : MAX_SEQUENCER_GRACE;
        if (gracePeriod > maxGrace) revert AutoPayLLMGracePeriodOutOfRange(gracePeriod, maxGrace);
        uint80 startRound;
        if (feed != address(0)) {
            if (feed.code.length == 0) revert AutoPayLLMInvalidSequencerFeed(feed);
            bool ok;
            (ok, startRound,,) = SequencerWindow.latest(AggregatorV3Interface(feed));
            if (!ok || startRound == 0) revert AutoPayLLMInvalidSequencerFeed(feed);
        }
        sequencerUptimeFeed = AggregatorV3Interface(feed);
        sequencerGracePeriod = gracePeriod;
        _feedSince = uint40(block.timestamp);
        _feedStartRound = startRound;
        emit SequencerUptimeFeedSet(feed, gracePeriod);
    }

    /**
     * @notice Recovers tokens sent to the contract outside its functions. For the payment token only the surplus
     * over every deposit, escrow, credit and bond can leave.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; non-zero `to`; something to sweep.
     *
     * Emits {Swept}.
     */
    function sweep(IERC20 token, address to) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        if (to == address(0)) revert AutoPayLLMZeroAddress();
        uint256 balance = token.balanceOf(address(this));
        uint256 amount = balance;
        if (token == paymentToken) {
            uint256 owed = totalLiabilities();
            amount = balance > owed ? balance - owed : 0;
        }
        if (amount == 0) revert AutoPayLLMNoSurplus(address(token));
        emit Swept(address(token), to, amount);
        token.safeTransfer(to, amount);
    }

    /**
     * @notice Stops settlement and release. Deposits, withdrawals, disputes and credit withdrawals keep working.
     *
     * Requirements: PAUSER_ROLE; not paused.
     */
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /**
     * @notice Resumes settlement and release.
     *
     * Requirements: PAUSER_ROLE; paused.
     */
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // =============================================================== views

    /// @notice The un-escrowed deposit of `user`.
    function balanceOf(address user) external view returns (uint256) {
        return _accounts[user].deposit;
    }

    /**
     * @notice Everything about a payer: deposit, spend so far today (UTC), own daily cap, auto-refill settings.
     */
    function accountOf(address user)
        external
        view
        returns (uint256 deposit_, uint256 spentToday, uint256 dailyCap, uint256 refillThreshold, uint256 refillAmount)
    {
        Account memory account = _accounts[user];
        Settings memory settings = _settings[user];
        deposit_ = account.deposit;
        spentToday = account.day == _today() ? account.spentToday : 0;
        dailyCap = settings.dailyCap;
        refillThreshold = settings.refillThreshold;
        refillAmount = _refillAmount[user];
    }

    /// @notice Credits of `provider` waiting for withdrawal by its payee.
    function credits(uint32 provider) external view returns (uint256) {
        return _credits[provider];
    }

    /// @notice Id of the provider registered as `name`; 0 when unknown.
    function providerId(string calldata name) external view returns (uint32) {
        return _providerIds[keccak256(bytes(name))];
    }

    /// @notice Id of the model registered as `name`; 0 when unknown.
    function modelId(string calldata name) external view returns (uint32) {
        return _modelIds[keccak256(bytes(name))];
    }

    /// @notice Number of registered providers (ids are 1..providerCount).
    function providerCount() external view returns (uint32) {
        return _providerCount;
    }

    /// @notice Number of registered models (ids are 1..modelCount).
    function modelCount() external view returns (uint32) {
        return _modelCount;
    }

    /// @notice Name and payee of provider `provider`.
    function providerInfo(uint32 provider) external view returns (string memory name, address payee) {
        return (_providerNames[provider], _payees[provider]);
    }

    /// @notice Name, price cap, daily budget and what was spent today (UTC) of model `model`.
    function modelInfo(uint32 model)
        external
        view
        returns (string memory name, uint256 maxPricePer1kTokens, uint256 dailyLimit, uint256 spentToday)
    {
        ModelConfig memory config = _modelConfigs[model];
        ModelUsage memory usage = _modelUsage[model];
        return (
            _modelNames[model],
            config.maxPricePer1kTokens,
            config.dailyLimit,
            usage.day == _today() ? usage.spentToday : 0
        );
    }

    /// @notice The most a row of `tokens` tokens of `model` may be charged: ceil(tokens * cap / 1000).
    function maxCharge(uint32 model, uint64 tokens) external view returns (uint256) {
        return _priceCap(tokens, _modelConfigs[model].maxPricePer1kTokens);
    }

    /// @notice Stored record of batch `batchId` (status None when unknown).
    function batchInfo(bytes32 batchId) external view returns (BatchInfo memory) {
        return _batches[batchId];
    }

    /// @notice Share `k` (< `batchInfo(batchId).shareCount`) of `batchId`: a provider and what release credits it.
    function batchShare(bytes32 batchId, uint256 k) external view returns (uint32 provider, uint256 amount) {
        uint256 packed = _shares[batchId][k];
        return (uint32(packed >> 224), packed & type(uint224).max);
    }

    /// @notice When the dispute window of `batchId` closes (and release becomes possible).
    function disputeClosesAt(bytes32 batchId) external view returns (uint256) {
        BatchInfo storage batch = _batches[batchId];
        if (batch.status == BatchStatus.None) revert AutoPayLLMUnknownBatch(batchId);
        return _disputeClosesAt(batch);
    }

    /// @notice Stored record of dispute `disputeId`.
    function disputeInfo(bytes32 disputeId) external view returns (DisputeInfo memory) {
        return _disputes[disputeId];
    }

    /// @notice Dispute state of `payer`'s usage of `provider` and `model` in the bucket starting at `callsFrom`.
    function intervalInfo(address payer, uint32 provider, uint32 model, uint64 callsFrom)
        external
        view
        returns (IntervalInfo memory)
    {
        return _intervals[_intervalKey(payer, provider, model, callsFrom)];
    }

    /// @notice The dispute that holds (or held) the funds of row `index` of `batchId`; zero if none.
    function rowDispute(bytes32 batchId, uint256 index) external view returns (bytes32) {
        return _rowDisputes[batchId][index];
    }



    /// @notice The bond a dispute of a row charging `amount` requires.
    function disputeBondFor(uint256 amount) public view returns (uint256) {
        return disputeBond + (amount * disputeBondBps) / 10_000;
    }

    /// @notice Everything the contract owes: deposits + escrow + credits + bonds.
    function totalLiabilities() public view returns (uint256) {
        return totalDeposits + totalEscrow + totalCredits + totalBonds;
    }

    // ============================================================ internal

    function _settle(
        bytes32 batchId,
        Charge[] calldata charges,
        bytes32 receiptsRoot,
        string calldata dataCid,
        uint256 callsFrom
    ) internal {
        uint256 rows = charges.length;
        _checkBatch(batchId, rows, receiptsRoot, dataCid);
        SettleContext memory ctx;
        ctx.today = _today();
        ctx.providerCount = _providerCount;
        ctx.modelCount = _modelCount;
        ctx.providerTotals = new uint256[](ctx.providerCount + 1);
        ctx.modelSpent = new uint256[](ctx.modelCount + 1);
        ctx.modelPrice = new uint256[](ctx.modelCount + 1);
        ctx.modelLimit = new uint256[](ctx.modelCount + 1);
        bytes32[] memory leaves = new bytes32[](rows);
        uint256 accepted;

        Row memory row;
        for (uint256 i; i < rows; ++i) {
            _readRow(charges, i, row);
            if (row.user != ctx.user || i == 0) {
                _storeAccount(ctx);
                _loadAccount(ctx, row.user);
            }
            RejectReason reason = _chargeRow(ctx, charges, i, row);
            if (reason == RejectReason.None) {
                // Cannot overflow: accepted < rows <= MAX_BATCH_ROWS.
                unchecked {
                    bytes32 leaf = ChargeMerkle.leaf(i, row.user, row.provider, row.model, row.tokens, row.amount);
                    _setAt(leaves, accepted++, leaf);
                }
            } else {
                emit RowRejected(batchId, i, row.user, reason);
            }
        }
        _storeAccount(ctx);
        _storeModelUsage(ctx);
        _recordBatch(
            ctx, batchId, receiptsRoot, dataCid, callsFrom, rows, ChargeMerkle.root(leaves, accepted), accepted
        );
    }

    function _recordBatch(
        SettleContext memory ctx,
        bytes32 batchId,
        bytes32 receiptsRoot,
        string calldata dataCid,
        uint256 callsFrom,
        uint256 rows,
        bytes32 rowsRoot,
        uint256 accepted
    ) internal {
        uint64 releaseAt = uint64(block.timestamp) + disputeWindow;
        if (!_bucketLocked) _bucketLocked = true;
        _receiptsRoots[receiptsRoot] = batchId;
        // Cannot truncate: timestamps < 2^40 (year 36812); rows, accepted and shares <= MAX_BATCH_ROWS < 2^16.
        _batches[batchId] = BatchInfo({
            rowsRoot: rowsRoot,
            receiptsRoot: receiptsRoot,
            settledAt: uint40(block.timestamp),
            releaseAt: uint40(releaseAt),
            callsFrom: uint40(callsFrom),
            rowCount: uint16(rows),
            acceptedCount: uint16(accepted),
            shareCount: uint16(_storeShares(ctx, batchId)),
            status: BatchStatus.Escrowed,
            sequencerRound: _sequencerRoundNow()
        });
        // What was pulled arrived in deposits; what was charged moved from deposits to escrow.
        uint256 charged = ctx.charged;
        totalDeposits = totalDeposits + ctx.pulled - charged;
        totalEscrow += charged;
        emit BatchSettled(
            batchId, rowsRoot, receiptsRoot, accepted, rows - accepted, charged, releaseAt, uint64(callsFrom), dataCid
        );
    }

    /// @dev Checks one row against every rule and charges it in memory. Returns why it was rejected, or None.
    function _chargeRow(SettleContext memory ctx, Charge[] calldata charges, uint256 i, Row memory row)
        internal
        returns (RejectReason)
    {
        uint256 provider = row.provider;
        uint256 model = row.model;
        uint256 amount = row.amount;
        if (provider == 0 || provider > ctx.providerCount) return RejectReason.UnknownProvider;
        if (model == 0 || model > ctx.modelCount) return RejectReason.ModelNotPriced;
        uint256 modelSpent = _at(ctx.modelSpent, model);
        if (modelSpent == 0) modelSpent = _loadModel(ctx, model);
        // Cannot overflow: every value below is at most 2^128 (amount, spend, prices) or 2^64 (tokens).
        unchecked {
            modelSpent -= 1;
            uint256 price = _at(ctx.modelPrice, model);
            if (price == 0) return RejectReason.ModelNotPriced;
            if (amount == 0) return RejectReason.ZeroAmount;
            if (ctx.user == address(0)) return RejectReason.InvalidPayer;
            if (amount > _priceCap(row.tokens, price)) return RejectReason.OverPriceCap;

            uint256 spent = ctx.spentToday + amount;
            if (spent > type(uint96).max || (ctx.dailyCap != 0 && spent > ctx.dailyCap)) {
                return RejectReason.OverDailyCap;
            }
            modelSpent += amount;
            uint256 limit = _at(ctx.modelLimit, model);
            if (modelSpent > type(uint128).max || (limit != 0 && modelSpent > limit)) {
                return RejectReason.OverModelBudget;
            }

            uint256 balance = ctx.deposit;
            if (balance < amount + ctx.refillThreshold && !ctx.refillExhausted) {
                balance = _refill(ctx, charges, i, balance);
            }
            if (balance < amount) return RejectReason.InsufficientFunds;

            ctx.deposit = balance - amount;
            ctx.spentToday = spent;
            _setAt(ctx.modelSpent, model, modelSpent + 1);
            _setAt(ctx.providerTotals, provider, _at(ctx.providerTotals, provider) + amount);
            ctx.charged += amount;
        }
        return RejectReason.None;
    }

    /**
     * @dev Pulls from the current payer's allowance what the rest of its run of rows (from row `i`) needs plus the
     * refill threshold, and at least the configured refill amount; never more than allowance or wallet balance.
     * Returns the new deposit balance.
     */
    function _refill(SettleContext memory ctx, Charge[] calldata charges, uint256 i, uint256 balance)
        internal
        returns (uint256)
    {
        address user = ctx.user;
        uint256 need = ctx.refillThreshold;
        uint256 rows = charges.length;
        for (uint256 j = i; j < rows && charges[j].user == user; ++j) {
            need += charges[j].amount;
        }
        uint256 want = need > balance ? need - balance : 0;
        uint256 refillAmount = _refillAmount[user];
        if (refillAmount > want) want = refillAmount;

        uint256 available = paymentToken.allowance(user, address(this));
        uint256 wallet = paymentToken.balanceOf(user);
        if (wallet < available) available = wallet;
        uint256 request = want < available ? want : available;
        uint256 received;
        if (request != 0) {
            // Make storage consistent for anything the token may read during the call.
            _storeAccount(ctx);
            received = _pullFrom(user, request, false);
        }
        if (received < want) ctx.refillExhausted = true;
        emit AutoRefilled(user, want, received);
        if (received == 0) return balance;
        balance += received;
        if (balance > type(uint128).max) revert AutoPayLLMDepositTooLarge(user, balance);
        ctx.deposit = balance;
        ctx.pulled += received;
        return balance;
    }

    function _storeAccount(SettleContext memory ctx) internal {
        if (ctx.user != address(0)) {
            _accounts[ctx.user] =
                Account({deposit: uint128(ctx.deposit), spentToday: uint96(ctx.spentToday), day: uint32(ctx.today)});
        }
    }

    function _storeModelUsage(SettleContext memory ctx) internal {
        uint256 count = ctx.modelCount;
        for (uint256 m = 1; m <= count; ++m) {
            uint256 stored = _at(ctx.modelSpent, m);
            if (stored != 0) {
                _modelUsage[uint32(m)] = ModelUsage({spentToday: uint128(stored - 1), day: uint32(ctx.today)});
            }
        }
    }

    function _storeShares(SettleContext memory ctx, bytes32 batchId) internal returns (uint32 shareCount) {
        uint256 count = ctx.providerCount;
        mapping(uint256 => uint256) storage shares = _shares[batchId];
        for (uint256 p = 1; p <= count; ++p) {
            uint256 amount = _at(ctx.providerTotals, p);
            if (amount != 0) shares[shareCount++] = (p << 224) | amount;
        }
    }

    /// @dev Removes a disputed row's amount from its provider's releasable share of the batch.
    function _takeShare(bytes32 batchId, uint256 shareCount, uint32 provider, uint256 amount) internal {
        mapping(uint256 => uint256) storage shares = _shares[batchId];
        for (uint256 k; k < shareCount; ++k) {
            uint256 packed = shares[k];
            if (uint32(packed >> 224) == provider) {
                // A proven row's amount is part of its provider's share (disputes only ever subtract once per row).
                shares[k] = packed - amount;
                return;
            }
        }
        // Unreachable for a row proven against the rows root.
        revert AutoPayLLMUnknownProvider(provider);
    }

    /**
     * @dev Proves and counts every named row into `record` (billed tokens; held tokens and amount) and holds the
     * rows still in an open window whose funds no dispute held before.
     */
    function _nameRows(DisputeInfo storage record, bytes32 disputeId, RowRef[] calldata rows, uint40 callsFrom)
        internal
    {
        Charge calldata first = rows[0].charge;
        uint256 billed;
        uint256 heldTokens;
        uint256 heldAmount;
        bytes32 lastBatch;
        uint256 lastIndex;
        bool open; // whether the window of `lastBatch` is open (cached across its rows)
        for (uint256 i; i < rows.length; ++i) {
            RowRef calldata ref = rows[i];
            bytes32 batchId = ref.batchId;
            uint256 index = ref.index;
            Charge calldata charge = ref.charge;
            bool sameBatch = i != 0 && batchId == lastBatch;
            if (i != 0 && !(sameBatch ? index > lastIndex : uint256(batchId) > uint256(lastBatch))) {
                revert AutoPayLLMRowsNotOrdered(i);
            }
            BatchInfo storage batch = _batches[batchId];
            if (batch.status == BatchStatus.None) revert AutoPayLLMUnknownBatch(batchId);
            if (
                batch.callsFrom != callsFrom || charge.user != first.user || charge.provider != first.provider
                    || charge.model != first.model
            ) revert AutoPayLLMRowOutsideInterval(i);
            bytes32 leaf =
                ChargeMerkle.leaf(index, charge.user, charge.provider, charge.model, charge.tokens, charge.amount);
            if (!MerkleProof.verifyCalldata(ref.proof, batch.rowsRoot, leaf)) {
                revert AutoPayLLMInvalidProof(batchId, index);
            }
            billed += charge.tokens;
            if (!sameBatch) {
                open = batch.status == BatchStatus.Escrowed && block.timestamp < _disputeClosesAt(batch);
            }
            lastBatch = batchId;
            lastIndex = index;
            if (!open || _rowDisputes[batchId][index] != bytes32(0)) continue;
            _rowDisputes[batchId][index] = disputeId;
            _takeShare(batchId, batch.shareCount, charge.provider, charge.amount);
            heldTokens += charge.tokens;
            heldAmount += charge.amount;
            emit DisputeRowHeld(disputeId, batchId, index, charge.amount);
        }
        // Cannot truncate: at most MAX_DISPUTE_ROWS rows of < 2^64 tokens and < 2^128 amounts held in escrow.
        record.billedTokens = uint128(billed);
        record.heldTokens = uint128(heldTokens);
        record.heldAmount = uint128(heldAmount);
    }

    /// @dev Pays out a dispute: `refund` (+ the bond when returned) to the payer, the rest to the provider.
    function _close(
        bytes32 disputeId,
        DisputeInfo storage record,
        uint128 refund,
        uint128 overbilledTokens,
        bool bondReturned
    ) internal {
        delete _intervals[_keyOf(record)].openDispute;
        uint128 amount = record.heldAmount;
        uint128 bond = record.bond;
        uint128 toProvider = amount - refund;
        address payer = record.payer;
        Account storage account = _accounts[payer];
        uint256 toPayer = uint256(refund) + (bondReturned ? bond : 0);
        uint256 providerGets = uint256(toProvider) + (bondReturned ? 0 : bond);
        uint256 newDeposit = account.deposit + toPayer;
        if (newDeposit > type(uint128).max) revert AutoPayLLMDepositTooLarge(payer, newDeposit);
        account.deposit = uint128(newDeposit);
        _credits[record.provider] += providerGets;
        totalEscrow -= amount;
        totalBonds -= bond;
        totalDeposits += toPayer;
        totalCredits += providerGets;
        emit DisputeResolved(disputeId, msg.sender, overbilledTokens, refund, toProvider, bondReturned);
    }


    function _deposit(address user, address from, uint256 amount) internal {
        if (amount == 0) revert AutoPayLLMZeroAmount();
        uint256 received = _pullFrom(from, amount, true);
        if (received == 0) revert AutoPayLLMTokenTransferShort(amount, 0);
        Account storage account = _accounts[user];
        uint256 balance = account.deposit + received;
        if (balance > type(uint128).max) revert AutoPayLLMDepositTooLarge(user, balance);
        account.deposit = uint128(balance);
        totalDeposits += received;
        emit Deposited(user, from, received);
    }

    /// @dev Takes `amount` from `user`: deposit first, the shortfall from the allowance (must arrive in full).
    function _collect(address user, uint256 amount) internal {
        if (amount == 0) return;
        Account storage account = _accounts[user];
        uint256 balance = account.deposit;
        uint256 fromDeposit = amount < balance ? amount : balance;
        // Cannot underflow: fromDeposit <= balance.
        unchecked {
            account.deposit = uint128(balance - fromDeposit);
        }
        totalDeposits -= fromDeposit;
        uint256 shortfall = amount - fromDeposit;
        if (shortfall != 0) {
            uint256 received = _pullFrom(user, shortfall, true);
            if (received < shortfall) revert AutoPayLLMTokenTransferShort(shortfall, received);
            // A surplus (should a token deliver more than asked) is the payer's.
            if (received > shortfall) {
                account.deposit += uint128(received - shortfall);
                totalDeposits += received - shortfall;
            }
        }
    }

    /**
     * @dev transferFrom `from` to this contract; returns what arrived (balance difference). A failed transfer
     * reverts when `strict` (deposits, bonds) and returns 0 otherwise (settlement then rejects the row).
     */
    function _pullFrom(address from, uint256 amount, bool strict) internal returns (uint256) {
        uint256 before = paymentToken.balanceOf(address(this));
        if (!paymentToken.trySafeTransferFrom(from, address(this), amount)) {
            if (strict) revert SafeERC20.SafeERC20FailedOperation(address(paymentToken));
            return 0;
        }
        uint256 afterBalance = paymentToken.balanceOf(address(this));
        return afterBalance > before ? afterBalance - before : 0;
    }

    function _modelOrRegister(string calldata name) internal returns (uint32 id) {
        bytes32 key = _nameKey(name);
        id = _modelIds[key];
        if (id == 0) {
            id = ++_modelCount;
            _modelIds[key] = id;
            _modelNames[id] = name;
            emit ModelRegistered(id, name);
        }
    }

    /// @dev The checks both settlement functions make before charging: caller, pause, batch, root and CID.
    function _checkBatch(bytes32 batchId, uint256 rows, bytes32 receiptsRoot, string calldata dataCid)
        internal
        view
    {
        _checkRole(RELAYER_ROLE);
        _requireNotPaused();
        if (batchId == bytes32(0)) revert AutoPayLLMInvalidBatch(batchId);
        if (_batches[batchId].status != BatchStatus.None) revert AutoPayLLMBatchAlreadySettled(batchId);
        if (rows == 0) revert AutoPayLLMEmptyBatch();
        if (rows > MAX_BATCH_ROWS) revert AutoPayLLMTooManyRows(rows, MAX_BATCH_ROWS);
        if (receiptsRoot == bytes32(0)) revert AutoPayLLMInvalidReceiptsRoot();
        bytes32 settledAs = _receiptsRoots[receiptsRoot];
        if (settledAs != bytes32(0)) revert AutoPayLLMReceiptsRootUsed(receiptsRoot, settledAs);
        if (bytes(dataCid).length == 0 || bytes(dataCid).length > MAX_CID_LENGTH) {
            revert AutoPayLLMInvalidCid(bytes(dataCid).length);
        }
    }

    /// @dev The sequencer feed's latest round (0: no feed; SequencerWindow.UNKNOWN_ROUND: the feed did not answer).
    function _sequencerRoundNow() internal view returns (uint80) {
        AggregatorV3Interface feed = sequencerUptimeFeed;
        if (address(feed) == address(0)) return 0;
        (bool ok, uint80 roundId,,) = SequencerWindow.latest(feed);
        return ok && roundId != 0 ? roundId : SequencerWindow.UNKNOWN_ROUND;
    }

    function _keyOf(DisputeInfo storage record) internal view returns (bytes32) {
        return _intervalKey(record.payer, record.provider, record.model, record.callsFrom);
    }

    function _loadAccount(SettleContext memory ctx, address user) internal view {
        Account memory account = _accounts[user];
        Settings memory settings = _settings[user];
        ctx.user = user;
        ctx.deposit = account.deposit;
        ctx.spentToday = account.day == ctx.today ? account.spentToday : 0;
        ctx.dailyCap = settings.dailyCap;
        ctx.refillThreshold = settings.refillThreshold;
        ctx.refillExhausted = false;
    }

    /// @dev Caches a model's price cap, daily budget and spend today; returns spend + 1 (0 marks "not loaded").
    function _loadModel(SettleContext memory ctx, uint256 model) internal view returns (uint256 spentPlusOne) {
        ModelConfig memory config = _modelConfigs[uint32(model)];
        ModelUsage memory usage = _modelUsage[uint32(model)];
        spentPlusOne = (usage.day == ctx.today ? uint256(usage.spentToday) : 0) + 1;
        _setAt(ctx.modelSpent, model, spentPlusOne);
        _setAt(ctx.modelPrice, model, config.maxPricePer1kTokens);
        _setAt(ctx.modelLimit, model, config.dailyLimit);
    }

    function _openDispute(bytes32 disputeId) internal view returns (DisputeInfo storage record) {
        record = _disputes[disputeId];
        if (record.status != DisputeStatus.Open) revert AutoPayLLMDisputeNotOpen(disputeId);
    }

    /**
     * @dev When the dispute window of `batch` closes, for both {dispute} and {release}: `releaseAt`, extended over
     * L2 sequencer outages when a sequencer-uptime feed is set (type(uint256).max while it cannot close yet).
     */
    function _disputeClosesAt(BatchInfo storage batch) internal view virtual returns (uint256) {
        uint256 releaseAt = batch.releaseAt;
        AggregatorV3Interface feed = sequencerUptimeFeed;
        if (address(feed) == address(0)) return releaseAt;
        uint256 settledAt = batch.settledAt;
        uint80 round = batch.sequencerRound;
        // Settled before this feed was set (no feed then, or another one): its history is read from where it started.
        if (round == 0 || settledAt < _feedSince) round = _feedStartRound;
        return SequencerWindow.closesAt(feed, sequencerGracePeriod, settledAt, releaseAt, round);
    }

    function _today() internal view returns (uint32) {
        return uint32(block.timestamp / 1 days);
    }

    /// @dev The key of an interval's dispute state: `keccak256(abi.encode(payer, provider, model, callsFrom))`; a
    /// dispute's id is `keccak256(abi.encode(key, n))`, n counting the interval's disputes from 0.
    function _intervalKey(address payer, uint32 provider, uint32 model, uint256 callsFrom)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, provider, model, callsFrom));
    }

    function _nameKey(string calldata name) internal pure returns (bytes32) {
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_LENGTH) revert AutoPayLLMInvalidName();
        return keccak256(bytes(name));
    }

    function _checkTimeout(uint64 seconds_) internal pure {
        if (seconds_ < MIN_TIMEOUT || seconds_ > MAX_TIMEOUT) {
            revert AutoPayLLMTimeoutOutOfRange(seconds_, MIN_TIMEOUT, MAX_TIMEOUT);
        }
    }

    /// @dev ceil(tokens * pricePer1k / 1000). Callers pass tokens < 2^64 and pricePer1k < 2^128.
    function _priceCap(uint256 tokens, uint256 pricePer1k) internal pure returns (uint256) {
        // Cannot overflow: 2^64 * 2^128 + 999 < 2^256.
        unchecked {
            return (uint256(tokens) * pricePer1k + 999) / 1000;
        }
    }

    /**
     * @dev Row `i` of `charges`, read straight from calldata into `row`. Every field must be canonically encoded
     * (no dirty high-order bits) so that the leaf built from the values is the leaf any client builds.
     */
    function _readRow(Charge[] calldata charges, uint256 i, Row memory row) private pure {
        uint256 dirty;
        assembly ("memory-safe") {
            // In range: the ABI decoder checked that the whole array lies in calldata.
            let ptr := add(charges.offset, mul(i, 0xa0))
            let user := calldataload(ptr)
            let provider := calldataload(add(ptr, 0x20))
            let model := calldataload(add(ptr, 0x40))
            let tokens := calldataload(add(ptr, 0x60))
            let amount := calldataload(add(ptr, 0x80))
            dirty := or(
                or(shr(160, user), shr(32, provider)),
                or(or(shr(32, model), shr(64, tokens)), shr(128, amount))
            )
            mstore(row, user)
            mstore(add(row, 0x20), provider)
            mstore(add(row, 0x40), model)
            mstore(add(row, 0x60), tokens)
            mstore(add(row, 0x80), amount)
        }
        if (dirty != 0) revert AutoPayLLMMalformedRow(i);
    }

    /// @dev `array[i]` without the bounds check; callers guarantee `i < array.length`.
    function _at(uint256[] memory array, uint256 i) private pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := mload(add(add(array, 0x20), shl(5, i)))
        }
    }

    /// @dev `array[i] = value` without the bounds check; callers guarantee `i < array.length`.
    function _setAt(uint256[] memory array, uint256 i, uint256 value) private pure {
        assembly ("memory-safe") {
            mstore(add(add(array, 0x20), shl(5, i)), value)
        }
    }

    /// @dev `array[i] = value` without the bounds check; callers guarantee `i < array.length`.
    function _setAt(bytes32[] memory array, uint256 i, bytes32 value) private pure {
        assembly ("memory-safe") {
            mstore(add(add(array, 0x20), shl(5, i)), value)
        }
    }
}
