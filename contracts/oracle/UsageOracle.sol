// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {FunctionsClient} from "@chainlink/contracts/src/v0.8/functions/v1_0_0/FunctionsClient.sol";
import {FunctionsRequest} from "@chainlink/contracts/src/v0.8/functions/v1_0_0/libraries/FunctionsRequest.sol";

import {AutoPayLLM} from "../AutoPayLLM.sol";
import {IAutoPayLLM} from "../interfaces/IAutoPayLLM.sol";
import {SequencerWindow} from "../libraries/SequencerWindow.sol";
import {IUsageOracle} from "./interfaces/IUsageOracle.sol";

/**
 * @title UsageOracle
 * @notice The Chainlink side of the settlement router (`AutoPayLLM`):
 * - Pricing: a USD price feed of the payment token (`AggregatorV3Interface`) read with staleness (governed
 *   heartbeat), zero/negative, incomplete-round and governed range checks, exact decimal scaling, and no price at
 *   all while the L2 sequencer is down or within its grace period (the sequencer-uptime feed set on the router).
 * - Dispute verification: for an open dispute, a Chainlink Functions request runs the repository's JavaScript
 *   source (`oracle/functions/provider-usage.js`), which asks the provider usage API how many tokens the payer used
 *   on the dispute's provider and model over the dispute's call interval (the usage bucket its rows committed when
 *   they settled). On fulfilment this contract, holding the router's ARBITER_ROLE, resolves the dispute: the tokens
 *   billed over every named row beyond what the provider reports (above a governed tolerance), less what earlier
 *   disputes of the interval refunded, are refunded from the held rows; the rest goes to the provider. A rejected
 *   dispute (no overcharge) pays the held rows and the bond to the provider.
 *
 * Anyone may start (or retry) a verification: the payer, the provider's payee, the relayer, a keeper; the router
 * starts it itself when a dispute opens. Each dispute gets at most `maxAttempts` requests, one at a time, paid by
 * the Functions subscription: the router's dispute bond should cover that cost. An answer that fails (source error,
 * malformed response) leaves the dispute open for a retry; an answer that comes after the dispute's arbiter
 * deadline is dropped, and the dispute falls to governance; past governance's deadline the charge stands.
 *
 * @dev Roles: DEFAULT_ADMIN_ROLE (governance: the timelock) configures everything; SECRETS_ROLE (an operator) may
 * point requests at a new version of the DON-hosted secrets.
 */
contract UsageOracle is IUsageOracle, FunctionsClient, AccessControl, ReentrancyGuardTransient {
    using FunctionsRequest for FunctionsRequest.Request;

    // ------------------------------------------------------------ constants

    /// @notice May change the DON-hosted secrets reference (slot and version) that requests carry.
    bytes32 public constant SECRETS_ROLE = keccak256("SECRETS_ROLE");

    /// @notice USD amounts in {usdToTokens} and {tokensToUsd} carry 18 decimals.
    uint8 public constant USD_DECIMALS = 18;
    uint8 public constant MAX_DECIMALS = 18;
    uint32 public constant MIN_HEARTBEAT = 60;
    uint32 public constant MAX_HEARTBEAT = 2 days;
    /// @notice The measured worst-case fulfilment, 189,408 gas (test/contracts/UsageOracle.callback-gas.test.ts), plus
    /// 25 %: a resolution that writes every slot it touches from zero.
    uint32 public constant MIN_CALLBACK_GAS = 237_000;
    /// @notice Chainlink Functions' maximum callback gas limit.
    uint32 public constant MAX_CALLBACK_GAS = 300_000;
    uint256 public constant MAX_URL_LENGTH = 256;
    /// @notice Not below the Functions coordinator's own request timeout (5 minutes).
    uint64 public constant MIN_REQUEST_TIMEOUT = 5 minutes;
    uint64 public constant MAX_REQUEST_TIMEOUT = 1 days;
    uint8 public constant MAX_ATTEMPTS = 10;
    uint16 public constant MAX_TOLERANCE_BPS = 1000;

    // ---------------------------------------------------------------- state

    /// @notice The settlement router whose disputes this oracle resolves.
    AutoPayLLM public immutable settlement;
    /// @notice Decimals of the router's payment token.
    uint8 public immutable tokenDecimals;

    AggregatorV3Interface public priceFeed;
    uint8 public priceFeedDecimals;
    uint32 public priceHeartbeat;
    uint128 public minPrice;
    uint128 public maxPrice;

    bytes32 public donId;
    uint64 public subscriptionId;
    uint32 public callbackGasLimit = MAX_CALLBACK_GAS;
    uint8 public secretsSlotId;
    uint64 public secretsVersion;

    uint64 public requestTimeout = 15 minutes;
    uint8 public maxAttempts = 3;
    uint16 public toleranceBps;

    string private _source;
    string private _usageApiUrl;

    mapping(bytes32 requestId => Request) private _requests;
    mapping(bytes32 disputeId => Verification) private _verifications;

    // ---------------------------------------------------------- constructor

    /**
     * @param settlement_ The AutoPayLLM router (grant this contract its ARBITER_ROLE).
     * @param functionsRouter The Chainlink Functions router of the chain.
     * @param admin Receives DEFAULT_ADMIN_ROLE (the timelock in production).
     */
    constructor(address settlement_, address functionsRouter, address admin) FunctionsClient(functionsRouter) {
        if (settlement_ == address(0) || functionsRouter == address(0) || admin == address(0)) {
            revert UsageOracleZeroAddress();
        }
        settlement = AutoPayLLM(settlement_);
        uint8 decimals = IERC20Metadata(address(AutoPayLLM(settlement_).paymentToken())).decimals();
        if (decimals > MAX_DECIMALS) revert UsageOracleUnsupportedDecimals(decimals, MAX_DECIMALS);
        tokenDecimals = decimals;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ======================================================= verification

    /**
     * @notice Asks the Chainlink DON for the provider-side usage behind an open dispute: the payer's tokens of the
     * dispute's provider and model over its call interval; the answer resolves the dispute in the router. Anyone
     * may call (the router does when the dispute opens). One request per dispute is in flight at a time; a failed
     * or lost one may be retried `requestTimeout` after it was sent, at most `maxAttempts` requests per dispute.
     * @param disputeId The router's dispute id.
     * @return requestId The Functions request id.
     *
     * Requirements:
     * - the dispute is open and its arbiter deadline has not passed;
     * - the previous request of this dispute (answered or not) was sent at least `requestTimeout` ago, and fewer
     *   than `maxAttempts` were sent;
     * - the Functions subscription, DON id, source and usage API are configured.
     *
     * Emits {VerificationRequested} (and FunctionsClient's `RequestSent`).
     */
    function requestVerification(bytes32 disputeId) external nonReentrant returns (bytes32 requestId) {
        IAutoPayLLM.DisputeInfo memory info = settlement.disputeInfo(disputeId);
        if (info.status != IAutoPayLLM.DisputeStatus.Open) revert UsageOracleDisputeNotOpen(disputeId);
        if (block.timestamp >= info.arbiterDeadline) {
            revert UsageOracleDeadlinePassed(disputeId, info.arbiterDeadline);
        }
        Verification storage verification = _verifications[disputeId];
        bytes32 previous = verification.requestId;
        if (verification.sentAt != 0) {
            // Retries are spaced by requestTimeout, answered or not: nobody can spend a dispute's attempts (and the
            // subscription's LINK) in a burst while the usage API is briefly down.
            uint256 retryAt = uint256(verification.sentAt) + requestTimeout;
            if (block.timestamp < retryAt) revert UsageOracleRequestPending(disputeId, previous, retryAt);
            // A lost request: its answer, should it still come, is refused as unknown.
            if (previous != bytes32(0)) delete _requests[previous];
        }
        uint8 attempts = verification.attempts;
        if (attempts >= maxAttempts) revert UsageOracleTooManyAttempts(disputeId, attempts);

        requestId = _sendRequest(_buildRequest(_args(info)), subscriptionId, callbackGasLimit, donId);
        _requests[requestId] = Request({disputeId: disputeId, sentAt: uint64(block.timestamp)});
        verification.requestId = requestId;
        verification.sentAt = uint64(block.timestamp);
        // Cannot overflow: attempts < maxAttempts <= MAX_ATTEMPTS.
        unchecked {
            verification.attempts = attempts + 1;
            emit VerificationRequested(disputeId, requestId, msg.sender, attempts + 1);
        }
    }

    // ========================================================== governance

    /**
     * @notice Sets the USD price feed of the payment token (answer: USD per whole token), its heartbeat and the
     * range of answers accepted (in the feed's units), e.g. the aggregator's own min/max bounds.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; a contract `feed` with at most MAX_DECIMALS decimals;
     * MIN_HEARTBEAT <= heartbeat <= MAX_HEARTBEAT; 0 < minPrice <= maxPrice < 2^128.
     *
     * Emits {PriceFeedSet}.
     */
    function setPriceFeed(address feed, uint32 heartbeat, uint256 minPrice_, uint256 maxPrice_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (feed == address(0)) revert UsageOracleZeroAddress();
        if (heartbeat < MIN_HEARTBEAT || heartbeat > MAX_HEARTBEAT) {
            revert UsageOracleHeartbeatOutOfRange(heartbeat, MIN_HEARTBEAT, MAX_HEARTBEAT);
        }
        if (minPrice_ == 0 || minPrice_ > maxPrice_ || maxPrice_ > type(uint128).max) {
            revert UsageOraclePriceBoundsInvalid(minPrice_, maxPrice_);
        }
        uint8 decimals = AggregatorV3Interface(feed).decimals();
        if (decimals > MAX_DECIMALS) revert UsageOracleUnsupportedDecimals(decimals, MAX_DECIMALS);
        priceFeed = AggregatorV3Interface(feed);
        priceFeedDecimals = decimals;
        priceHeartbeat = heartbeat;
        minPrice = uint128(minPrice_);
        maxPrice = uint128(maxPrice_);
        emit PriceFeedSet(feed, decimals, heartbeat, minPrice_, maxPrice_);
    }

    /**
     * @notice Sets the Chainlink Functions subscription that pays for requests (this contract must be one of its
     * consumers), the DON id, and the gas limit of the fulfilment callback.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; non-zero ids; MIN_CALLBACK_GAS <= callbackGasLimit <= MAX_CALLBACK_GAS.
     *
     * Emits {FunctionsConfigSet}.
     */
    function setFunctionsConfig(uint64 subscriptionId_, bytes32 donId_, uint32 callbackGasLimit_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (subscriptionId_ == 0 || donId_ == bytes32(0)) {
            revert UsageOracleInvalidFunctionsConfig(subscriptionId_, donId_);
        }
        if (callbackGasLimit_ < MIN_CALLBACK_GAS || callbackGasLimit_ > MAX_CALLBACK_GAS) {
            revert UsageOracleCallbackGasOutOfRange(callbackGasLimit_, MIN_CALLBACK_GAS, MAX_CALLBACK_GAS);
        }
        subscriptionId = subscriptionId_;
        donId = donId_;
        callbackGasLimit = callbackGasLimit_;
        emit FunctionsConfigSet(subscriptionId_, donId_, callbackGasLimit_);
    }

    /**
     * @notice Points requests at DON-hosted secrets (slot and version, as uploaded with the Functions toolkit);
     * version 0 sends no secrets. The secrets hold the usage API key (`usageApiKey`), never the URL.
     *
     * Requirements: DEFAULT_ADMIN_ROLE or SECRETS_ROLE.
     *
     * Emits {SecretsReferenceSet}.
     */
    function setSecretsReference(uint8 slotId, uint64 version) external {
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) _checkRole(SECRETS_ROLE);
        secretsSlotId = slotId;
        secretsVersion = version;
        emit SecretsReferenceSet(slotId, version);
    }

    /**
     * @notice Sets the JavaScript source every request runs (the text of `oracle/functions/provider-usage.js`).
     *
     * Requirements: DEFAULT_ADMIN_ROLE; non-empty.
     *
     * Emits {SourceSet} with the source's keccak256 (compare it with the file's).
     */
    function setSource(string calldata source_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bytes(source_).length == 0) revert UsageOracleEmptySource();
        _source = source_;
        emit SourceSet(keccak256(bytes(source_)), bytes(source_).length);
    }

    /**
     * @notice Sets the base URL of the provider usage API the source queries (`{url}/v1/usage`). Public on purpose:
     * who the oracle trusts is governance's decision, not the secrets holder's.
     *
     * Requirements: DEFAULT_ADMIN_ROLE; 1 to MAX_URL_LENGTH bytes.
     *
     * Emits {UsageApiSet}.
     */
    function setUsageApi(string calldata url) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 length = bytes(url).length;
        if (length == 0 || length > MAX_URL_LENGTH) revert UsageOracleInvalidUrl(length, MAX_URL_LENGTH);
        _usageApiUrl = url;
        emit UsageApiSet(url);
    }

    /**
     * @notice Sets how verification works: how long a request may stay unanswered before a retry is allowed, the
     * attempts per dispute, and the tolerance: an excess of at most `toleranceBps` of the billed tokens is not an
     * overcharge (rounding and clock skew at the interval's edges between LiteLLM and the provider).
     *
     * Requirements: DEFAULT_ADMIN_ROLE; each value within its MIN/MAX constants; maxAttempts >= 1.
     *
     * Emits {VerificationParamsSet}.
     */
    function setVerificationParams(uint64 requestTimeout_, uint8 maxAttempts_, uint16 toleranceBps_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (requestTimeout_ < MIN_REQUEST_TIMEOUT || requestTimeout_ > MAX_REQUEST_TIMEOUT) {
            revert UsageOracleRequestTimeoutOutOfRange(requestTimeout_, MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT);
        }
        if (maxAttempts_ == 0 || maxAttempts_ > MAX_ATTEMPTS) {
            revert UsageOracleMaxAttemptsOutOfRange(maxAttempts_, 1, MAX_ATTEMPTS);
        }
        if (toleranceBps_ > MAX_TOLERANCE_BPS) revert UsageOracleToleranceTooLarge(toleranceBps_, MAX_TOLERANCE_BPS);
        requestTimeout = requestTimeout_;
        maxAttempts = maxAttempts_;
        toleranceBps = toleranceBps_;
        emit VerificationParamsSet(requestTimeout_, maxAttempts_, toleranceBps_);
    }

    // =============================================================== views

    /**
     * @notice USD value of `tokenAmount` token units, with USD_DECIMALS decimals, rounded down.
     * @dev Reverts like {latestPrice}.
     */
    function tokensToUsd(uint256 tokenAmount) external view returns (uint256) {
        (uint256 price, uint8 decimals,) = latestPrice();
        return Math.mulDiv(tokenAmount, price * 10 ** USD_DECIMALS, 10 ** (uint256(tokenDecimals) + decimals));
    }

    /**
     * @notice Token units worth `usdAmount` (USD with USD_DECIMALS decimals) at the feed's price, rounded up (so no
     * priced call is free): `ceil(usdAmount * 10^(tokenDecimals + feedDecimals) / (price * 10^USD_DECIMALS))`.
     * @dev Reverts like {latestPrice}.
     */
    function usdToTokens(uint256 usdAmount) external view returns (uint256) {
        (uint256 price, uint8 decimals,) = latestPrice();
        return Math.mulDiv(
            usdAmount, 10 ** (uint256(tokenDecimals) + decimals), price * 10 ** USD_DECIMALS, Math.Rounding.Ceil
        );
    }

    /// @notice The verification state of dispute `disputeId`.
    function verificationOf(bytes32 disputeId) external view returns (Verification memory) {
        return _verifications[disputeId];
    }

    /// @notice The request in flight under `requestId` (all zero when unknown or answered).
    function requestOf(bytes32 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /**
     * @notice The string arguments a verification request of this dispute carries, in order: usage API base URL,
     * provider name, model name, payer (lowercase hex), interval start and end (unix seconds, end exclusive: the
     * calls' own interval as their batches committed it). Run `oracle/functions/provider-usage.js` with them to see
     * what the DON will answer.
     */
    function requestArgs(bytes32 disputeId) external view returns (string[] memory) {
        return _args(settlement.disputeInfo(disputeId));
    }

    /// @notice The JavaScript source requests run.
    function source() external view returns (string memory) {
        return _source;
    }

    /// @notice The base URL of the provider usage API.
    function usageApiUrl() external view returns (string memory) {
        return _usageApiUrl;
    }

    /**
     * @notice The over-billed tokens an answer of `reportedTokens` gives dispute `disputeId`: zero when the billed
     * tokens (over every row the dispute named) exceed the report by at most `toleranceBps` of them; else the excess
     * less what earlier disputes of the interval refunded, at most the tokens the dispute holds.
     */
    function overbilledFor(bytes32 disputeId, uint256 reportedTokens) external view returns (uint128) {
        return _overbilled(settlement.disputeInfo(disputeId), reportedTokens);
    }

    /**
     * @notice The payment token's USD price from the feed, checked: the L2 sequencer is up and out of its grace
     * period (when the router has a sequencer-uptime feed), the round is complete, fresh (`priceHeartbeat`),
     * positive and within [minPrice, maxPrice].
     * @return price USD per whole token, with `decimals` decimals.
     * @return decimals The feed's decimals.
     * @return updatedAt When the answer was last updated.
     */
    function latestPrice() public view returns (uint256 price, uint8 decimals, uint256 updatedAt) {
        AggregatorV3Interface feed = priceFeed;
        if (address(feed) == address(0)) revert UsageOraclePriceFeedNotSet();
        _checkSequencer();
        (uint80 roundId, int256 answer,, uint256 updated, uint80 answeredInRound) = feed.latestRoundData();
        if (updated == 0 || answeredInRound < roundId) {
            revert UsageOracleIncompleteRound(roundId, answeredInRound, updated);
        }
        if (updated > block.timestamp || block.timestamp - updated > priceHeartbeat) {
            revert UsageOracleStalePrice(updated, priceHeartbeat, block.timestamp);
        }
        if (answer <= 0) revert UsageOracleNonPositivePrice(answer);
        // Cannot overflow: answer > 0.
        price = uint256(answer);
        if (price < minPrice || price > maxPrice) revert UsageOraclePriceOutOfRange(answer, minPrice, maxPrice);
        return (price, priceFeedDecimals, updated);
    }

    // ============================================================ internal

    /// @dev Handles the DON's answer to a verification request (FunctionsClient checked the caller is the router).
    // solhint-disable-next-line private-vars-leading-underscore
    function fulfillRequest(bytes32 requestId, bytes memory response, bytes memory err) internal override {
        Request memory request = _requests[requestId];
        if (request.sentAt == 0) revert UsageOracleUnknownRequest(requestId);
        delete _requests[requestId];
        bytes32 disputeId = request.disputeId;
        delete _verifications[disputeId].requestId;

        IAutoPayLLM.DisputeInfo memory info = settlement.disputeInfo(disputeId);
        FailureReason reason;
        if (err.length != 0) reason = FailureReason.FunctionsError;
        else if (response.length != 32) reason = FailureReason.MalformedResponse;
        else if (info.status != IAutoPayLLM.DisputeStatus.Open) reason = FailureReason.DisputeClosed;
        else if (block.timestamp >= info.arbiterDeadline) reason = FailureReason.DeadlinePassed;
        if (reason != FailureReason.None) {
            emit VerificationFailed(disputeId, requestId, reason, err);
            return;
        }
        uint256 reported = uint256(bytes32(response));
        uint128 overbilled = _overbilled(info, reported);
        emit UsageVerified(disputeId, requestId, info.billedTokens, reported, overbilled);
        settlement.resolveDispute(disputeId, overbilled);
    }

    /// @dev See {overbilledFor}.
    function _overbilled(IAutoPayLLM.DisputeInfo memory info, uint256 reportedTokens) internal view returns (uint128) {
        uint256 billed = info.billedTokens;
        if (billed <= reportedTokens) return 0;
        // Cannot underflow: billed > reportedTokens. Cannot overflow: billed < 2^138 (MAX_DISPUTE_ROWS rows of
        // < 2^64 tokens); toleranceBps <= MAX_TOLERANCE_BPS.
        unchecked {
            uint256 excess = billed - reportedTokens;
            if (excess * 10_000 <= billed * toleranceBps) return 0;
            uint256 prior = info.priorRefundedTokens;
            uint256 remaining = excess > prior ? excess - prior : 0;
            return uint128(remaining < info.heldTokens ? remaining : info.heldTokens);
        }
    }

    /// @dev No price while the router's sequencer-uptime feed reports the sequencer down or within its grace period.
    function _checkSequencer() internal view {
        AggregatorV3Interface feed = settlement.sequencerUptimeFeed();
        if (address(feed) == address(0)) return;
        (bool ok,, int256 answer, uint256 startedAt) = SequencerWindow.latest(feed);
        if (!ok) revert UsageOracleSequencerFeedInvalid(address(feed));
        if (answer == 1) revert UsageOracleSequencerDown(startedAt);
        uint256 graceEndsAt = startedAt + settlement.sequencerGracePeriod();
        if (block.timestamp < graceEndsAt) revert UsageOracleSequencerGracePeriod(startedAt, graceEndsAt);
    }

    function _buildRequest(string[] memory args) internal view returns (bytes memory) {
        string memory code = _source;
        if (
            bytes(code).length == 0 || bytes(_usageApiUrl).length == 0 || subscriptionId == 0
                || donId == bytes32(0)
        ) revert UsageOracleNotConfigured();
        FunctionsRequest.Request memory req;
        req.initializeRequestForInlineJavaScript(code);
        if (secretsVersion != 0) req.addDONHostedSecrets(secretsSlotId, secretsVersion);
        req.setArgs(args);
        return req.encodeCBOR();
    }

    /// @dev [usage API URL, provider name, model name, payer, interval start, interval end].
    function _args(IAutoPayLLM.DisputeInfo memory info) internal view returns (string[] memory args) {
        (string memory providerName,) = settlement.providerInfo(info.provider);
        (string memory modelName,,,) = settlement.modelInfo(info.model);
        args = new string[](6);
        args[0] = _usageApiUrl;
        args[1] = providerName;
        args[2] = modelName;
        args[3] = Strings.toHexString(info.payer);
        args[4] = Strings.toString(info.callsFrom);
        args[5] = Strings.toString(info.callsTo);
    }
}
