// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MockERC20} from "./MockERC20.sol";

/**
 * @notice Test-only malicious token: on every transfer it calls back into `victim` with `payload` (a reentrancy
 * attempt) and records whether the callback succeeded.
 */
contract MockReentrantToken is MockERC20 {
    address public victim;
    bytes public payload;
    bool public attackSucceeded;
    bytes public lastRevert;

    constructor() MockERC20("Evil Token", "EVIL", 18) {}

    /// @notice Arms the callback.
    function arm(address victim_, bytes calldata payload_) external {
        victim = victim_;
        payload = payload_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address callee = victim;
        if (callee != address(0) && from != address(0) && to != address(0)) {
            victim = address(0); // one attempt per arming
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory ret) = callee.call(payload);
            attackSucceeded = ok;
            lastRevert = ret;
        }
    }
}
