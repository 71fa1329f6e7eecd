// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title IUsageOracle
 * @notice Public surface of the Chainlink-backed oracle of the settlement router: a USD price feed for pricing in
 * the payment token, and Chainlink Functions verification of disputed rows against the provider's own usage
 * report, which it then resolves in `AutoPayLLM` as that contract's arbiter.
 */
interface IUsageOracle {
    /// @notice Why a Functions answer did not resolve its dispute. Emitted in {VerificationFailed}.
    enum FailureReason {
        None,
        FunctionsError, // the source threw or the DON failed: `err` carries the message
        MalformedResponse, // the response is not exactly one 32-byte word
        DisputeClosed, // the dispute was resolved meanwhile (by governance) or expired
        DeadlinePassed // the arbiter's deadline passed before the answer arrived: governance decides now
    }

    /// @notice An oracle request in flight, keyed by its Functions request id.
    struct Request {
        bytes32 disputeId;
        uint64 sentAt;
    }

    /// @notice Verification state of one disputed row.
    struct Verification {
        bytes32 requestId; // latest request; zero once answered
        uint64 sentAt; // when the latest request was sent
        uint8 attempts; // requests sent for this dispute
    }

    event VerificationRequested(bytes32 indexed disputeId, bytes32 indexed requestId, address requester, uint8 attempt);
    event UsageVerified(
        bytes32 indexed disputeId,
        bytes32 indexed requestId,
        uint256 billedTokens,
        uint256 reportedTokens,
        uint128 overbilledTokens
    );
    event VerificationFailed(bytes32 indexed disputeId, bytes32 indexed requestId, FailureReason reason, bytes err);
    event PriceFeedSet(address indexed feed, uint8 decimals, uint32 heartbeat, uint256 minPrice, uint256 maxPrice);
    event FunctionsConfigSet(uint64 subscriptionId, bytes32 donId, uint32 callbackGasLimit);
    event SecretsReferenceSet(uint8 slotId, uint64 version);
    event SourceSet(bytes32 sourceHash, uint256 length);
    event UsageApiSet(string url);
    event VerificationParamsSet(uint64 requestTimeout, uint8 maxAttempts, uint16 toleranceBps);

    error UsageOracleZeroAddress();
    error UsageOracleUnsupportedDecimals(uint8 decimals, uint8 max);
    error UsageOracleHeartbeatOutOfRange(uint32 heartbeat, uint32 min, uint32 max);
    error UsageOraclePriceBoundsInvalid(uint256 minPrice, uint256 maxPrice);
    error UsageOraclePriceFeedNotSet();
    error UsageOracleNonPositivePrice(int256 answer);
    error UsageOraclePriceOutOfRange(int256 answer, uint256 minPrice, uint256 maxPrice);
    error UsageOracleIncompleteRound(uint80 roundId, uint80 answeredInRound, uint256 updatedAt);
    error UsageOracleStalePrice(uint256 updatedAt, uint256 heartbeat, uint256 now_);
    error UsageOracleSequencerDown(uint256 since);
    error UsageOracleSequencerGracePeriod(uint256 upSince, uint256 graceEndsAt);
    error UsageOracleSequencerFeedInvalid(address feed);
    error UsageOracleCallbackGasOutOfRange(uint32 gasLimit, uint32 min, uint32 max);
    error UsageOracleInvalidFunctionsConfig(uint64 subscriptionId, bytes32 donId);
    error UsageOracleEmptySource();
    error UsageOracleInvalidUrl(uint256 length, uint256 max);
    error UsageOracleRequestTimeoutOutOfRange(uint64 seconds_, uint64 min, uint64 max);
    error UsageOracleMaxAttemptsOutOfRange(uint8 attempts, uint8 min, uint8 max);
    error UsageOracleToleranceTooLarge(uint16 bps, uint16 max);
    error UsageOracleNotConfigured();
    error UsageOracleDisputeNotOpen(bytes32 disputeId);
    error UsageOracleDeadlinePassed(bytes32 disputeId, uint256 deadline);
    error UsageOracleRequestPending(bytes32 disputeId, bytes32 requestId, uint256 retryAt);
    error UsageOracleTooManyAttempts(bytes32 disputeId, uint8 attempts);
    error UsageOracleUnknownRequest(bytes32 requestId);

    function requestVerification(bytes32 disputeId) external returns (bytes32 requestId);
    function setPriceFeed(address feed, uint32 heartbeat, uint256 minPrice, uint256 maxPrice) external;
    function setFunctionsConfig(uint64 subscriptionId, bytes32 donId, uint32 callbackGasLimit) external;
    function setSecretsReference(uint8 slotId, uint64 version) external;
    function setSource(string calldata source) external;
    function setUsageApi(string calldata url) external;
    function setVerificationParams(uint64 requestTimeout, uint8 maxAttempts, uint16 toleranceBps) external;
    function latestPrice() external view returns (uint256 price, uint8 decimals, uint256 updatedAt);
    function usdToTokens(uint256 usdAmount) external view returns (uint256);
    function tokensToUsd(uint256 tokenAmount) external view returns (uint256);
    function overbilledFor(bytes32 disputeId, uint256 reportedTokens) external view returns (uint128);
    function verificationOf(bytes32 disputeId) external view returns (Verification memory);
    function requestOf(bytes32 requestId) external view returns (Request memory);
    function requestArgs(bytes32 disputeId) external view returns (string[] memory);
}
