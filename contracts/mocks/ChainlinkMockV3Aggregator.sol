// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol";

/**
 * @notice Chainlink's own `MockV3Aggregator` (`@chainlink/contracts/src/v0.8/tests/`), re-exported so Hardhat
 * builds an artifact for it: the price feed and the sequencer-uptime feed of the tests.
 */
contract ChainlinkMockV3Aggregator is MockV3Aggregator {
    constructor(uint8 decimals_, int256 initialAnswer) MockV3Aggregator(decimals_, initialAnswer) {}
}
