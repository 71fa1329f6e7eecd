// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

/**
 * @notice Plain, unoptimised re-implementation of @openzeppelin/merkle-tree's `makeMerkleTree` and `getProof`
 * (heap layout, leaf i at position 2n-2-i, sorted-pair node hash), used as the oracle for ChargeMerkle.
 */
library ReferenceMerkle {
    function tree(bytes32[] memory leaves) internal pure returns (bytes32[] memory nodes) {
        uint256 n = leaves.length;
        nodes = new bytes32[](2 * n - 1);
        for (uint256 i = 0; i < n; i++) {
            nodes[nodes.length - 1 - i] = leaves[i];
        }
        // Inner nodes n-2 down to 0.
        for (uint256 k = n - 1; k > 0; k--) {
            uint256 j = k - 1;
            nodes[j] = Hashes.commutativeKeccak256(nodes[2 * j + 1], nodes[2 * j + 2]);
        }
    }

    function proof(bytes32[] memory nodes, uint256 leafCount, uint256 leafIndex)
        internal
        pure
        returns (bytes32[] memory path)
    {
        uint256 position = nodes.length - 1 - leafIndex;
        uint256 depth;
        for (uint256 p = position; p > 0; p = (p - 1) / 2) depth++;
        path = new bytes32[](depth);
        uint256 d;
        while (position > 0) {
            uint256 sibling = position % 2 == 1 ? position + 1 : position - 1;
            path[d++] = nodes[sibling];
            position = (position - 1) / 2;
        }
        leafCount; // layout is fully determined by nodes.length
    }
}
