// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/**
 * @notice Test-only, deliberately UNSAFE: the seed document's `AutoPayLLM`, made compilable with the smallest
 * possible completion of its missing `_transferFrom`/`_transfer` helpers (raw calls, results ignored, as written).
 * The attack tests run each exploit against this contract (where it works) and against ours (where it must not).
 */
contract SeedAutoPayLLM {
    uint256 public constant TOKENS_PER_AGPT = 1250; // 1 AGPT = 1250 tokens

    IERC20 public immutable token;
    mapping(bytes32 => uint256) public apiCredits;

    constructor(IERC20 token_) {
        token = token_;
    }

    /// @notice As in the seed: anyone charges anyone.
    function executeLLMCall(address user, string calldata provider, uint256 tokensUsed) external returns (uint256) {
        bytes32 id = keccak256(abi.encode(user, provider));
        uint256 agptCost = tokensUsed / TOKENS_PER_AGPT;

        apiCredits[id] += agptCost;
        _transferFrom(user, address(this), agptCost);
        return agptCost;
    }

    /// @notice As in the seed: no owner check, balance never cleared.
    function withdrawCredits(bytes32 id) external {
        uint256 amount = apiCredits[id];
        _transfer(msg.sender, amount);
    }

    function _transferFrom(address from, address to, uint256 amount) internal {
        // The seed never checks the result.
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok,) = address(token).call(abi.encodeCall(IERC20.transferFrom, (from, to, amount)));
        ok; // ignored, as in the seed
    }

    function _transfer(address to, uint256 amount) internal {
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok,) = address(token).call(abi.encodeCall(IERC20.transfer, (to, amount)));
        ok;
    }
}
