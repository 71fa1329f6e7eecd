// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IFunctionsClient} from "@chainlink/contracts/src/v0.8/functions/v1_0_0/interfaces/IFunctionsClient.sol";

/**
 * @title MockFunctionsRouter
 * @notice Test stand-in for the Chainlink Functions router: records each request (client, subscription, DON id,
 * callback gas limit and the CBOR request data), and lets a test deliver the answer a Node run of the request's
 * source produced, calling the client's `handleOracleFulfillment` with exactly the request's callback gas limit.
 * @dev Unlike the real router, a reverting callback reverts {fulfill} with the client's error, so tests can assert
 * it (the real router records the callback as failed instead).
 */
contract MockFunctionsRouter {
    struct Recorded {
        address client;
        uint64 subscriptionId;
        uint32 callbackGasLimit;
        uint16 dataVersion;
        bool fulfilled;
        bytes32 donId;
        bytes data;
    }

    uint256 public requestCount;
    mapping(bytes32 requestId => Recorded) private _requests;

    event RequestRecorded(
        bytes32 indexed requestId,
        address indexed client,
        uint64 subscriptionId,
        bytes32 donId,
        uint32 callbackGasLimit,
        bytes data
    );
    event Fulfilled(bytes32 indexed requestId, address indexed client);

    error MockFunctionsRouterUnknownRequest(bytes32 requestId);
    error MockFunctionsRouterAlreadyFulfilled(bytes32 requestId);

    /// @notice Records a request as the real router's `sendRequest` would accept it; returns a fresh request id.
    function sendRequest(
        uint64 subscriptionId,
        bytes calldata data,
        uint16 dataVersion,
        uint32 callbackGasLimit,
        bytes32 donId
    ) external returns (bytes32 requestId) {
        uint256 nonce = ++requestCount;
        requestId = keccak256(abi.encode(address(this), msg.sender, nonce));
        _requests[requestId] = Recorded({
            client: msg.sender,
            subscriptionId: subscriptionId,
            callbackGasLimit: callbackGasLimit,
            dataVersion: dataVersion,
            fulfilled: false,
            donId: donId,
            data: data
        });
        emit RequestRecorded(requestId, msg.sender, subscriptionId, donId, callbackGasLimit, data);
    }

    /// @notice Delivers `response` or `err` for a recorded request, once, with the request's callback gas limit.
    function fulfill(bytes32 requestId, bytes calldata response, bytes calldata err) external {
        Recorded storage request = _requests[requestId];
        address client = request.client;
        if (client == address(0)) revert MockFunctionsRouterUnknownRequest(requestId);
        if (request.fulfilled) revert MockFunctionsRouterAlreadyFulfilled(requestId);
        request.fulfilled = true;
        _deliver(client, requestId, response, err, request.callbackGasLimit);
    }

    /// @notice Delivers a recorded request's answer, once, with `gas` instead of its callback gas limit (to measure
    /// what a callback needs).
    function fulfillWithGas(bytes32 requestId, bytes calldata response, bytes calldata err, uint32 gas) external {
        Recorded storage request = _requests[requestId];
        address client = request.client;
        if (client == address(0)) revert MockFunctionsRouterUnknownRequest(requestId);
        if (request.fulfilled) revert MockFunctionsRouterAlreadyFulfilled(requestId);
        request.fulfilled = true;
        _deliver(client, requestId, response, err, gas);
    }

    /// @notice Delivers an answer for any request id to any client, as a faulty or replaying router would.
    function fulfillUnchecked(address client, bytes32 requestId, bytes calldata response, bytes calldata err)
        external
    {
        _deliver(client, requestId, response, err, 300_000);
    }

    /// @notice The recorded request `requestId`.
    function getRequest(bytes32 requestId) external view returns (Recorded memory) {
        return _requests[requestId];
    }

    function _deliver(address client, bytes32 requestId, bytes calldata response, bytes calldata err, uint32 gas)
        private
    {
        emit Fulfilled(requestId, client);
        bytes memory call = abi.encodeCall(IFunctionsClient.handleOracleFulfillment, (requestId, response, err));
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory returned) = client.call{gas: gas}(call);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(returned, 0x20), mload(returned))
            }
        }
    }
}
