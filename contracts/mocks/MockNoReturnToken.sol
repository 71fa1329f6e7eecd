// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

// ERC-20 metadata getters keep their standard lower-case names.
/* solhint-disable const-name-snakecase */

/**
 * @notice Test-only USDT-style token: `transfer`, `transferFrom` and `approve` return nothing (no bool), and it
 * reverts instead of returning false.
 */
contract MockNoReturnToken {
    string public constant name = "Tether-style";
    string public constant symbol = "USDTx";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    error MockNoReturnTokenInsufficient();

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        totalSupply += amount;
    }

    /// @notice Approves without returning a value.
    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    /// @notice Transfers without returning a value.
    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    /// @notice Transfers from an allowance without returning a value.
    function transferFrom(address from, address to, uint256 amount) external {
        if (allowance[from][msg.sender] < amount) revert MockNoReturnTokenInsufficient();
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
    }

    function _move(address from, address to, uint256 amount) private {
        if (balanceOf[from] < amount) revert MockNoReturnTokenInsufficient();
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}
