// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/**
 * @title AGPTToken
 * @notice The "AgentGPT" (AGPT) payment and governance token: a fixed-supply ERC-20 with 18 decimals,
 * EIP-2612 permits (so a payer funds the router in one transaction) and ERC-5805 votes (so holders
 * govern budgets through `AgentGovernor`).
 * @dev The whole supply is minted once, to `holder`, at deployment. There is no owner and no mint function.
 */
contract AGPTToken is ERC20, ERC20Permit, ERC20Votes {
    /// @dev The holder of the initial supply is the zero address.
    error AGPTTokenZeroHolder();

    /**
     * @param holder Receives the whole initial supply.
     * @param initialSupply Supply in token units (18 decimals).
     */
    constructor(address holder, uint256 initialSupply) ERC20("AgentGPT", "AGPT") ERC20Permit("AgentGPT") {
        if (holder == address(0)) revert AGPTTokenZeroHolder();
        _mint(holder, initialSupply);
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
