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

    /// @notice Lifecycle of a row dispute.
    enum DisputeStatus {
        None,
        Open,
        Resolved
    }

    /// @notice One aggregated row of a batch: what `user` owes `provider` for `tokens` of `model`.
    struct Charge {
        address user; // the payer
        uint32 provider; // id from registerProvider ("openai" -> 1, ...)
        uint32 model; // id from the model registry ("gpt-4-turbo" -> 1, ...)
        uint64 tokens; // tokens billed in this row
        uint128 amount; // token units charged for this row
    }

    /// @notice Stored record of a settled batch.
    struct BatchInfo {
        bytes32 rowsRoot; // Merkle root of the accepted rows (OpenZeppelin StandardMerkleTree, unsorted leaves)
        bytes32 receiptsRoot; // Merkle root of the batch's receipts, supplied by the relayer
        uint64 settledAt;
        uint64 releaseAt; // end of the dispute window
        uint32 rowCount; // rows submitted
        uint32 acceptedCount; // rows charged
        uint32 shareCount; // providers with escrowed funds in this batch
        BatchStatus status;
    }

    /// @notice Stored record of a disputed row.
    struct DisputeInfo {
        address payer;
        uint32 provider;
        uint64 openedAt;
        DisputeStatus status;
        uint128 amount; // the disputed row's charge, held in escrow until resolution
        uint128 bond; // posted by the payer
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
    event DisputeOpened(
        bytes32 indexed batchId,
        uint256 indexed index,
        address indexed payer,
        uint32 provider,
        uint128 amount,
        uint128 bond
    );
    event DisputeResolved(
        bytes32 indexed batchId,
        uint256 indexed index,
        address indexed resolver,
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
    error AutoPayLLMWindowClosed(bytes32 batchId, uint256 closesAt);
    error AutoPayLLMNotRowPayer(address caller, address payer);
    error AutoPayLLMAlreadyDisputed(bytes32 batchId, uint256 index);
    error AutoPayLLMInvalidProof(bytes32 batchId, uint256 index);
    error AutoPayLLMDisputeNotOpen(bytes32 batchId, uint256 index);
    error AutoPayLLMRefundTooLarge(uint256 refund, uint256 amount);
    error AutoPayLLMNotResolver(address caller, uint256 arbiterDeadline, uint256 governanceDeadline);
    error AutoPayLLMDisputeNotExpired(bytes32 batchId, uint256 index, uint256 expiresAt);
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
    function dispute(bytes32 batchId, uint256 index, Charge calldata charge, bytes32[] calldata proof) external;
    function resolveDispute(bytes32 batchId, uint256 index, uint128 refund) external;
    function release(bytes32 batchId) external;
    function withdrawCredits(uint32 provider) external;
    function balanceOf(address user) external view returns (uint256);
    function providerId(string calldata name) external view returns (uint32);
    function modelId(string calldata name) external view returns (uint32);
    function credits(uint32 provider) external view returns (uint256);
}
