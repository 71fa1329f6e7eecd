// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/**
 * @title AgentTimelock
 * @notice OpenZeppelin's {TimelockController}, unchanged. It holds every admin power of the suite; `AgentGovernor` is
 * its only proposer, canceller and executor.
 * @dev This file exists so that the build emits an artifact (Hardhat 3 builds artifacts for project sources only)
 * that Hardhat Ignition can deploy and block explorers can verify. Adds no state and no logic.
 */
contract AgentTimelock is TimelockController {
    /**
     * @param minDelay Initial minimum delay, in seconds, between queueing and executing an operation.
     * @param proposers Accounts granted the proposer and canceller roles.
     * @param executors Accounts granted the executor role (address(0): anyone may execute).
     * @param admin Optional temporary admin to wire roles after deployment (address(0): none). It must renounce.
     */
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
