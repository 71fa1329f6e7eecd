// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ChargeMerkle} from "../libraries/ChargeMerkle.sol";

/// @notice Test-only: exposes ChargeMerkle so TypeScript tests compare it with @openzeppelin/merkle-tree.
contract ChargeMerkleHarness {
    /// @notice Root of the tree over `leaves`.
    function root(bytes32[] calldata leaves) external pure returns (bytes32) {
        bytes32[] memory copy = leaves;
        return ChargeMerkle.root(copy, copy.length);
    }

    /// @notice Leaf of one row.
    function leaf(uint256 index, address user, uint32 provider, uint32 model, uint64 tokens, uint128 amount)
        external
        pure
        returns (bytes32)
    {
        return ChargeMerkle.leaf(index, user, provider, model, tokens, amount);
    }
}
