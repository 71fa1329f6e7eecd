// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {IAutoPayLLM} from "./interfaces/IAutoPayLLM.sol";
import {ChargeMerkle} from "./libraries/ChargeMerkle.sol";
import {SequencerWindow} from "./libraries/SequencerWindow.sol";

/**
 * @title AutoPayLLM
 * @notice Pay-per-use router for LLM calls routed by LiteLLM. A relayer settles batches of aggregated charge rows
 * (payer, provider, model); each row is checked against the model's governed price cap and daily budget and the
 * payer's own daily cap, then paid from the payer's deposit (topped up from the payer's ERC-20 allowance when
 * short or below the payer's auto-refill threshold). Charged funds stay in escrow for the dispute window, during
 * which the payer of a row may dispute it with a Merkle proof against the batch's on-chain rows root and a bond.
 * An arbiter (the oracle adapter, then governance) resolves disputes; after the window anyone releases the rest to
 * provider credits, which each provider's registered payee withdraws.
 *
 * Invariant: `paymentToken.balanceOf(this) >= totalDeposits + totalEscrow + totalCredits + totalBonds`, with
 * equality unless tokens were sent to the contract outside its functions (recoverable with {sweep}).
 *
 * @dev Supported tokens: any ERC-20, including tokens that return no bool (USDT-style). Incoming transfers are
 * credited by balance difference, so fee-on-transfer tokens are accounted for what actually arrives. Rebasing
 * tokens are not supported. Per-payer daily spend is tracked in 96 bits: a payer cannot be charged more than
 * 2^96 - 1 token units in one UTC day.
 */
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
    uint256 public constant MAX_BATCH_ROWS = 4096;
    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_NAME_LENGTH = 64;

    // ---------------------------------------------------------------- state

    /// @notice The ERC-20 every charge, deposit, bond and credit is denominated in.
    IERC20 public immutable paymentToken;

    uint64 public disputeWindow = DEFAULT_DISPUTE_WINDOW;
    uint64 public arbiterTimeout = 3 days;
    uint64 public governanceTimeout = 7 days;
    uint16 public disputeBondBps;
    uint32 private _providerCount;
    uint32 private _modelCount;
    uint256 public disputeBond;
    /// @notice Chainlink L2 sequencer-uptime feed; zero on chains without one (no window extension).
    AggregatorV3Interface public sequencerUptimeFeed;
    /// @notice Seconds a dispute window stays open after the sequencer came back up from an outage that overlapped it.
    uint64 public sequencerGracePeriod;

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
    mapping(bytes32 batchId => mapping(uint256 index => DisputeInfo)) private _disputes;

    // ---------------------------------------------------------- constructor

    /**
     * @param token The payment token.
     * @param admin Receives DEFAULT_ADMIN_ROLE, i.e. every governance power (the timelock in production).
     */
    constructor(address token, address admin) {
        if (token == address(0) || admin == address(0)) revert AutoPayLLMZeroAddress();
        paymentToken = IERC20(token);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ========================================================== settlement

    /**
     * @notice Settles one batch of charge rows. Each row is checked and charged independently: a row that breaks a
     * rule is skipped with a {RowRejected} event and the rest of the batch settles. Charged funds are escrowed until
     * the dispute window ends.
     * @param batchId Content-derived id; a batch id settles at most once.
     * @param charges Rows (payer, provider, model, tokens, amount). Rows of the same payer should be contiguous:
     * each run of a payer's rows reads and writes that payer's state once.
     * @param receiptsRoot Merkle root of the batch's receipts (each leaf carrying its row index).
     * @param dataCid IPFS CID of the batch file (receipts, rows, trees).
     *
     * Requirements:
     * - caller has RELAYER_ROLE; not paused; `batchId` non-zero and never settled;
     * - 1 to MAX_BATCH_ROWS rows; non-zero `receiptsRoot`; `dataCid` of 1 to MAX_CID_LENGTH bytes.
     *
     * Emits {RowRejected} per rejected row, {AutoRefilled} per allowance pull, then {BatchSettled}.
     */
    function settleBatch(bytes32 batchId, Charge[] calldata charges, bytes32 receiptsRoot, string calldata dataCid)
        external
        onlyRole(RELAYER_ROLE)
        whenNotPaused
        nonReentrant
    {
        uint256 rows = charges.length;
        if (batchId == bytes32(0)) revert AutoPayLLMInvalidBatch(batchId);
        if (_batches[batchId].status != BatchStatus.None) revert AutoPayLLMBatchAlreadySettled(batchId);
        if (rows == 0) revert AutoPayLLMEmptyBatch();
        if (rows > MAX_BATCH_ROWS) revert AutoPayLLMTooManyRows(rows, MAX_BATCH_ROWS);
        if (receiptsRoot == bytes32(0)) revert AutoPayLLMInvalidReceiptsRoot();
        if (bytes(dataCid).length == 0 || bytes(dataCid).length > MAX_CID_LENGTH) {
            revert AutoPayLLMInvalidCid(bytes(dataCid).length);
        }
        _settle(batchId, charges, receiptsRoot, dataCid);
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
     * @notice Disputes row `index` of `batchId`. The row's charge leaves the batch's releasable escrow until
     * resolved. The bond is taken from the caller's deposit, the shortfall from the caller's allowance.
     * @param charge The row exactly as settled.
     * @param proof Merkle proof of `[index, charge...]` against the batch's rows root.
     *
     * Requirements:
     * - the batch is escrowed and its dispute window is open;
     * - the caller is the row's payer; the row has not been disputed before;
     * - `proof` is valid (rejected rows are in no tree and cannot be disputed).
     *
     * Emits {DisputeOpened}.
     */
    function dispute(bytes32 batchId, uint256 index, Charge calldata charge, bytes32[] calldata proof)
        external
        nonReentrant
    {
        BatchInfo storage batch = _batches[batchId];
        if (batch.status != BatchStatus.Escrowed) revert AutoPayLLMBatchNotEscrowed(batchId, batch.status);
        uint256 closesAt = _disputeClosesAt(batch);
        if (block.timestamp >= closesAt) revert AutoPayLLMWindowClosed(batchId, closesAt);
        address payer = charge.user;
        if (msg.sender != payer) revert AutoPayLLMNotRowPayer(msg.sender, payer);
        DisputeInfo storage record = _disputes[batchId][index];
        if (record.status != DisputeStatus.None) revert AutoPayLLMAlreadyDisputed(batchId, index);
        uint32 provider = charge.provider;
        uint128 amount = charge.amount;
        bytes32 leaf = ChargeMerkle.leaf(index, payer, provider, charge.model, charge.tokens, amount);
        if (!MerkleProof.verifyCalldata(proof, batch.rowsRoot, leaf)) {
            revert AutoPayLLMInvalidProof(batchId, index);
        }

        _takeShare(batchId, batch.shareCount, provider, amount);
        uint128 bond = uint128(disputeBondFor(amount));
        record.payer = payer;
        record.provider = provider;
        record.openedAt = uint64(block.timestamp);
        record.status = DisputeStatus.Open;
        record.amount = amount;
        record.bond = bond;
        totalBonds += bond;
        emit DisputeOpened(batchId, index, payer, provider, amount, bond);
        _collect(payer, bond);
    }

    /**
     * @notice Resolves an open dispute: `refund` goes back to the payer's deposit, the rest of the row to the
     * provider's credits. The bond is returned to the payer when `refund` > 0 and paid to the provider otherwise.
     * @dev Until `openedAt + arbiterTimeout` the ARBITER_ROLE (oracle adapter) may resolve; governance
     * (DEFAULT_ADMIN_ROLE) may resolve until a further `governanceTimeout`; after that only
     * {refundExpiredDispute} applies.
     *
     * Requirements: the dispute is open; the caller may resolve now; `refund` <= the disputed amount.
     *
     * Emits {DisputeResolved}.
     */
    function resolveDispute(bytes32 batchId, uint256 index, uint128 refund) external nonReentrant {
        DisputeInfo storage record = _openDispute(batchId, index);
        uint256 arbiterDeadline = uint256(record.openedAt) + arbiterTimeout;
        uint256 governanceDeadline = arbiterDeadline + governanceTimeout;
        bool allowed = (block.timestamp < arbiterDeadline && hasRole(ARBITER_ROLE, msg.sender))
            || (block.timestamp < governanceDeadline && hasRole(DEFAULT_ADMIN_ROLE, msg.sender));
        if (!allowed) revert AutoPayLLMNotResolver(msg.sender, arbiterDeadline, governanceDeadline);
        if (refund > record.amount) revert AutoPayLLMRefundTooLarge(refund, record.amount);
        _resolve(batchId, index, record, refund);
    }

    /**
     * @notice Refunds a dispute in full (bond included) when neither the arbiter nor governance resolved it in
     * time. Anyone may call.
     *
     * Requirements: the dispute is open and `openedAt + arbiterTimeout + governanceTimeout` has passed.
     *
     * Emits {DisputeResolved}.
     */
    function refundExpiredDispute(bytes32 batchId, uint256 index) external nonReentrant {
        DisputeInfo storage record = _openDispute(batchId, index);
        uint256 expiresAt = uint256(record.openedAt) + arbiterTimeout + governanceTimeout;
        if (block.timestamp < expiresAt) revert AutoPayLLMDisputeNotExpired(batchId, index, expiresAt);
        _resolve(batchId, index, record, record.amount);
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
     * @notice Sets how long the arbiter has to resolve a dispute, then how long governance has before the payer
     * is refunded by default.
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
     * @notice Sets the L2 sequencer-uptime feed that extends dispute windows over sequencer outages (payers cannot
     * dispute while the sequencer is down), and the grace period after it comes back up. Zero `feed` turns the
     * extension off (chains without a sequencer feed). Applies to every escrowed batch, settled before or after.
     * @dev While a window overlaps an outage it cannot close; it then closes no earlier than `gracePeriod` after the
     * sequencer is back up. An outage that starts after a window closed does not reopen it. See {SequencerWindow}.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; `gracePeriod` <= MAX_SEQUENCER_GRACE (and zero when `feed` is zero); a
     * non-zero `feed` answers `latestRoundData` with a status (0 up, 1 down) and a non-zero `startedAt`.
     *
     * Emits {SequencerUptimeFeedSet}.
     */
    function setSequencerUptimeFeed(address feed, uint64 gracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint64 maxGrace = feed == address(0) ? 0 : MAX_SEQUENCER_GRACE;
        if (gracePeriod > maxGrace) revert AutoPayLLMGracePeriodOutOfRange(gracePeriod, maxGrace);
        if (feed != address(0)) {
            if (feed.code.length == 0) revert AutoPayLLMInvalidSequencerFeed(feed);
            (bool ok,,,) = SequencerWindow.latest(AggregatorV3Interface(feed));
            if (!ok) revert AutoPayLLMInvalidSequencerFeed(feed);
        }
        sequencerUptimeFeed = AggregatorV3Interface(feed);
        sequencerGracePeriod = gracePeriod;
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

    /// @notice Per-provider amounts still releasable for `batchId`.
    function batchShares(bytes32 batchId)
        external
        view
        returns (uint32[] memory providers, uint256[] memory amounts)
    {
        uint256 count = _batches[batchId].shareCount;
        providers = new uint32[](count);
        amounts = new uint256[](count);
        for (uint256 k; k < count; ++k) {
            uint256 packed = _shares[batchId][k];
            providers[k] = uint32(packed >> 224);
            amounts[k] = packed & type(uint224).max;
        }
    }

    /// @notice When the dispute window of `batchId` closes (and release becomes possible).
    function disputeClosesAt(bytes32 batchId) external view returns (uint256) {
        BatchInfo storage batch = _batches[batchId];
        if (batch.status == BatchStatus.None) revert AutoPayLLMUnknownBatch(batchId);
        return _disputeClosesAt(batch);
    }

    /// @notice Stored record of the dispute of row `index` of `batchId`.
    function disputeInfo(bytes32 batchId, uint256 index) external view returns (DisputeInfo memory) {
        return _disputes[batchId][index];
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

    function _settle(bytes32 batchId, Charge[] calldata charges, bytes32 receiptsRoot, string calldata dataCid)
        internal
    {
        uint256 rows = charges.length;
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
        _recordBatch(ctx, batchId, receiptsRoot, dataCid, rows, ChargeMerkle.root(leaves, accepted), accepted);
    }

    function _recordBatch(
        SettleContext memory ctx,
        bytes32 batchId,
        bytes32 receiptsRoot,
        string calldata dataCid,
        uint256 rows,
        bytes32 rowsRoot,
        uint256 accepted
    ) internal {
        uint64 releaseAt = uint64(block.timestamp) + disputeWindow;
        _batches[batchId] = BatchInfo({
            rowsRoot: rowsRoot,
            receiptsRoot: receiptsRoot,
            settledAt: uint64(block.timestamp),
            releaseAt: releaseAt,
            rowCount: uint32(rows),
            acceptedCount: uint32(accepted),
            shareCount: _storeShares(ctx, batchId),
            status: BatchStatus.Escrowed
        });
        // What was pulled arrived in deposits; what was charged moved from deposits to escrow.
        uint256 charged = ctx.charged;
        totalDeposits = totalDeposits + ctx.pulled - charged;
        totalEscrow += charged;
        emit BatchSettled(batchId, rowsRoot, receiptsRoot, accepted, rows - accepted, charged, releaseAt, dataCid);
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

    function _resolve(bytes32 batchId, uint256 index, DisputeInfo storage record, uint128 refund) internal {
        uint128 amount = record.amount;
        uint128 bond = record.bond;
        uint128 toProvider = amount - refund;
        bool bondReturned = refund != 0;
        record.status = DisputeStatus.Resolved;

        Account storage account = _accounts[record.payer];
        uint256 toPayer = uint256(refund) + (bondReturned ? bond : 0);
        uint256 providerGets = uint256(toProvider) + (bondReturned ? 0 : bond);
        uint256 newDeposit = account.deposit + toPayer;
        if (newDeposit > type(uint128).max) revert AutoPayLLMDepositTooLarge(record.payer, newDeposit);
        account.deposit = uint128(newDeposit);
        _credits[record.provider] += providerGets;
        totalEscrow -= amount;
        totalBonds -= bond;
        totalDeposits += toPayer;
        totalCredits += providerGets;
        emit DisputeResolved(batchId, index, msg.sender, refund, toProvider, bondReturned);
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

    function _openDispute(bytes32 batchId, uint256 index) internal view returns (DisputeInfo storage record) {
        record = _disputes[batchId][index];
        if (record.status != DisputeStatus.Open) revert AutoPayLLMDisputeNotOpen(batchId, index);
    }

    /**
     * @dev When the dispute window of `batch` closes, for both {dispute} and {release}: `releaseAt`, extended over
     * L2 sequencer outages when a sequencer-uptime feed is set (type(uint256).max while it cannot close yet).
     */
    function _disputeClosesAt(BatchInfo storage batch) internal view virtual returns (uint256) {
        uint256 releaseAt = batch.releaseAt;
        AggregatorV3Interface feed = sequencerUptimeFeed;
        if (address(feed) == address(0)) return releaseAt;
        return SequencerWindow.closesAt(feed, sequencerGracePeriod, batch.settledAt, releaseAt);
    }

    function _today() internal view returns (uint32) {
        return uint32(block.timestamp / 1 days);
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
