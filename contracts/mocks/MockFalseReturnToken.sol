// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {MockERC20} from "./MockERC20.sol";

/// @notice Test-only token whose `transfer`/`transferFrom` return false instead of reverting.
contract MockFalseReturnToken is MockERC20 {
    bool public failing;

    constructor() MockERC20("False Token", "FALSE", 18) {}

    /// @notice Makes every transfer return false from now on.
    function setFailing(bool failing_) external {
        failing = failing_;
    }

    /// @inheritdoc ERC20
    function transfer(address to, uint256 value) public override returns (bool) {
        if (failing) return false;
        return super.transfer(to, value);
    }

    /// @inheritdoc ERC20
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (failing) return false;
        return super.transferFrom(from, to, value);
    }
}
