// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IAutoPayLLM
 * @notice Public surface of the LiteLLM settlement router: types, events, errors and functions that the
 * relayer, the oracle adapter, the monitor and auditors rely on.
 */
interface IAutoPayLLM {
    /// @notice Why a row of a batch was not charged. Emitted in {RowRejected}.
    enum RejectReason {
        None,
        UnknownProvider, // provider id not registered
        ModelNotPriced, // model id unknown, or governance has not set its price cap (or set it to zero)
        ZeroAmount, // a row must charge at least one token unit
        InvalidPayer, // the zero address cannot pay
        OverPriceCap, // amount > ceil(tokens * maxPricePer1kTokens / 1000)
        OverDailyCap, // the payer's own daily cap would be exceeded
        OverModelBudget, // the model's governed daily budget would be exceeded
        InsufficientFunds // deposit plus what the allowance could pull does not cover the row
    }

    /// @notice Lifecycle of a settled batch.
    enum BatchStatus {
        None,
        Escrowed, // settled, funds held for the dispute window
        Released // window over, undisputed funds credited to providers
    }

    /// @notice Lifecycle of a dispute over a call interval.
    enum DisputeStatus {
        None,
        Open,
        Resolved, // judged by the arbiter (the oracle) or by governance
        Expired // nobody judged it by the governance deadline: the charge stands, the bond went back
    }

    /// @notice One aggregated row of a batch: what `user` owes `provider` for `tokens` of `model`.
    struct Charge {
        address user; // the payer
        uint32 provider; // id from registerProvider ("openai" -> 1, ...)
        uint32 model; // id from the model registry ("gpt-4-turbo" -> 1, ...)
        uint64 tokens; // tokens billed in this row
        uint128 amount; // token units charged for this row
    }

    /// @notice Stored record of a settled batch (three storage slots: the third packs 5+5+5+2+2+2+1+10 bytes).
    // solhint-disable-next-line gas-struct-packing
    struct BatchInfo {
        bytes32 rowsRoot; // Merkle root of the accepted rows (OpenZeppelin StandardMerkleTree, unsorted leaves)
        bytes32 receiptsRoot; // Merkle root of the batch's receipts, supplied by the relayer; settles once
        uint40 settledAt;
        uint40 releaseAt; // end of the dispute window (before any sequencer-outage extension)
        uint40 callsFrom; // start of the usage bucket in which every call of the batch started
        uint16 rowCount; // rows submitted
        uint16 acceptedCount; // rows charged
        uint16 shareCount; // providers with escrowed funds in this batch
        BatchStatus status;
        uint80 sequencerRound; // the sequencer-uptime feed's latest round at settlement; 0: no feed then
    }

    /// @notice One settled row named in a dispute, with its proof against its batch's rows root.
    struct RowRef {
        bytes32 batchId;
        uint256 index; // the row's position in the submitted batch
        Charge charge; // the row exactly as settled
        bytes32[] proof;
    }

    /**
     * @notice Stored record of a dispute: the payer's billed usage of one provider and model over one call interval
     * (a usage bucket), against what the provider reports for that interval.
     */
    struct DisputeInfo {
        address payer;
        uint32 provider;
        uint32 model;
        DisputeStatus status;
        uint40 callsFrom; // the interval [callsFrom, callsTo) of call start times
        uint40 callsTo;
        uint40 openedAt;
        uint40 arbiterDeadline; // the arbiter (oracle) may resolve before this time
        uint40 governanceDeadline; // governance may resolve before this time; after it the charge stands
        uint32 rows; // settled rows named: every one counts toward `billedTokens`
        uint128 billedTokens; // tokens billed by the named rows (settled, released or not)
        uint128 heldTokens; // tokens of the named rows whose funds this dispute holds in escrow
        uint128 heldAmount; // what those rows charged: the most this dispute can refund
        uint128 bond; // posted by the payer
        uint128 priorRefundedTokens; // tokens of this interval refunded by earlier disputes
        uint128 overbilledTokens; // set at resolution: tokens found billed beyond the provider's report
        uint128 refund; // set at resolution: returned to the payer's deposit
    }

    /// @notice Dispute state of one (payer, provider, model, call interval).
    struct IntervalInfo {
        bytes32 openDispute; // zero when none is open
        uint128 refundedTokens; // over-billed tokens refunded by resolved disputes, all together
        uint32 disputes; // disputes opened so far (the next dispute id derives from it)
    }

    // ---- settlement ----
    event BatchSettled(
        bytes32 indexed batchId,
        bytes32 rowsRoot,
        bytes32 receiptsRoot,
        uint256 acceptedRows,
        uint256 rejectedRows,
        uint256 escrowed,
        uint64 releaseAt,
        uint64 callsFrom,
        string dataCid
    );
    event RowRejected(bytes32 indexed batchId, uint256 index, address indexed user, RejectReason reason);
    event AutoRefilled(address indexed user, uint256 requested, uint256 received);
    event BatchReleased(bytes32 indexed batchId, uint256 amount);
    event ProviderCredited(bytes32 indexed batchId, uint32 indexed provider, uint256 amount);

    // ---- payers ----
    event Deposited(address indexed user, address indexed from, uint256 amount);
    event Withdrawn(address indexed user, uint256 amount);
    event DailyCapSet(address indexed user, uint256 cap);
    event AutoRefillSet(address indexed user, uint128 threshold, uint128 amount);

    // ---- disputes ----
    /// @notice Totals (billed, held tokens and amount) and deadlines are in {AutoPayLLM-disputeInfo}.
    event DisputeOpened(
        bytes32 indexed disputeId,
        address indexed payer,
        uint32 indexed provider,
        uint32 model,
        uint64 callsFrom,
        uint256 rows,
        uint128 bond
    );
    /// @notice A named row whose escrowed funds the dispute holds until it is resolved.
    event DisputeRowHeld(bytes32 indexed disputeId, bytes32 indexed batchId, uint256 index, uint128 amount);
    /// @notice `resolver` is the arbiter, governance, or (status Expired) whoever closed an expired dispute.
    event DisputeResolved(
        bytes32 indexed disputeId,
        address indexed resolver,
        uint128 overbilledTokens,
        uint128 refund,
        uint128 toProvider,
        bool bondReturned
    );

    // ---- providers ----
    event CreditsWithdrawn(uint32 indexed provider, address indexed payee, uint256 amount);

    // ---- governance ----
    event ProviderRegistered(uint32 indexed provider, string name, address payee);
    event ProviderPayeeSet(uint32 indexed provider, address payee);
    event ModelRegistered(uint32 indexed model, string name);
    event ModelPriceSet(uint32 indexed model, string name, uint256 maxPricePer1kTokens);
    event ModelBudgetSet(uint32 indexed model, string name, uint256 dailyLimit);
    event DisputeWindowSet(uint64 seconds_);
    event DisputeBondSet(uint256 amount, uint16 bps);
    event DisputeTimeoutsSet(uint64 arbiterTimeout, uint64 governanceTimeout);
    event UsageBucketSet(uint32 seconds_);
    event VerifierSet(address indexed verifier);
    event SequencerUptimeFeedSet(address indexed feed, uint64 gracePeriod);
    event Swept(address indexed token, address indexed to, uint256 amount);

    // ---- errors ----
    error AutoPayLLMZeroAddress();
    error AutoPayLLMZeroAmount();
    error AutoPayLLMValueTooLarge(uint256 value, uint256 max);
    error AutoPayLLMInsufficientDeposit(address user, uint256 available, uint256 requested);
    error AutoPayLLMDepositTooLarge(address user, uint256 balance);
    error AutoPayLLMBatchAlreadySettled(bytes32 batchId);
    error AutoPayLLMInvalidBatch(bytes32 batchId);
    error AutoPayLLMEmptyBatch();
    error AutoPayLLMTooManyRows(uint256 rows, uint256 max);
    error AutoPayLLMInvalidReceiptsRoot();
    error AutoPayLLMInvalidCid(uint256 length);
    error AutoPayLLMMalformedRow(uint256 index);
    error AutoPayLLMUnknownBatch(bytes32 batchId);
    error AutoPayLLMBatchNotEscrowed(bytes32 batchId, BatchStatus status);
    error AutoPayLLMWindowOpen(bytes32 batchId, uint256 closesAt);
    error AutoPayLLMNotRowPayer(address caller, address payer);
    error AutoPayLLMInvalidProof(bytes32 batchId, uint256 index);
    error AutoPayLLMNoDisputeRows();
    error AutoPayLLMTooManyDisputeRows(uint256 rows, uint256 max);
    error AutoPayLLMRowsNotOrdered(uint256 position);
    error AutoPayLLMRowOutsideInterval(uint256 position);
    error AutoPayLLMNothingToHold();
    error AutoPayLLMIntervalDisputeOpen(bytes32 disputeId);
    error AutoPayLLMDisputeNotOpen(bytes32 disputeId);
    error AutoPayLLMOverbilledTooLarge(uint256 overbilledTokens, uint256 heldTokens);
    error AutoPayLLMNotResolver(address caller, uint256 arbiterDeadline, uint256 governanceDeadline);
    error AutoPayLLMDisputeNotExpired(bytes32 disputeId, uint256 expiresAt);
    error AutoPayLLMReceiptsRootUsed(bytes32 receiptsRoot, bytes32 batchId);
    error AutoPayLLMInvalidInterval(uint256 callsFrom, uint256 usageBucket);
    error AutoPayLLMUsageBucketOutOfRange(uint32 seconds_, uint32 min, uint32 max);
    error AutoPayLLMUsageBucketLocked();
    error AutoPayLLMUnknownProvider(uint32 provider);
    error AutoPayLLMNotPayee(uint32 provider, address caller);
    error AutoPayLLMNothingToWithdraw(uint32 provider);
    error AutoPayLLMInvalidName();
    error AutoPayLLMProviderExists(string name, uint32 provider);
    error AutoPayLLMDisputeWindowOutOfRange(uint64 seconds_, uint64 min, uint64 max);
    error AutoPayLLMTimeoutOutOfRange(uint64 seconds_, uint64 min, uint64 max);
    error AutoPayLLMBondBpsTooLarge(uint16 bps, uint16 max);
    error AutoPayLLMTokenTransferShort(uint256 expected, uint256 received);
    error AutoPayLLMNoSurplus(address token);
    error AutoPayLLMInvalidSequencerFeed(address feed);
    error AutoPayLLMGracePeriodOutOfRange(uint64 gracePeriod, uint64 max);

    // ---- functions ----
    function settleBatch(bytes32 batchId, Charge[] calldata charges, bytes32 receiptsRoot, string calldata dataCid)
        external;
    function settleBatchAt(
        bytes32 batchId,
        Charge[] calldata charges,
        bytes32 receiptsRoot,
        string calldata dataCid,
        uint64 callsFrom
    ) external;
    function deposit(uint256 amount) external;
    function depositFor(address user, uint256 amount) external;
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
    function withdraw(uint256 amount) external;
    function setDailyCap(uint256 cap) external;
    function setAutoRefill(uint128 threshold, uint128 amount) external;
    function registerProvider(string calldata name, address payee) external returns (uint32);
    function setProviderPayee(uint32 provider, address payee) external;
    function setModelBudget(string calldata model, uint256 dailyLimit) external;
    function setModelPrice(string calldata model, uint256 maxPricePer1kTokens) external;
    function setDisputeWindow(uint64 seconds_) external;
    function setDisputeBond(uint256 amount) external;
    function setSequencerUptimeFeed(address feed, uint64 gracePeriod) external;
    function setUsageBucket(uint32 seconds_) external;
    function setVerifier(address verifier) external;
    function dispute(RowRef[] calldata rows) external returns (bytes32 disputeId);
    function resolveDispute(bytes32 disputeId, uint128 overbilledTokens) external;
    function settleExpiredDispute(bytes32 disputeId) external;
    function release(bytes32 batchId) external;
    function withdrawCredits(uint32 provider) external;
    function balanceOf(address user) external view returns (uint256);
    function providerId(string calldata name) external view returns (uint32);
    function modelId(string calldata name) external view returns (uint32);
    function credits(uint32 provider) external view returns (uint256);
}
