// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @title ChargeMerkle
 * @notice Leaf hashing and root building for the rows of a batch, bit-for-bit equal to OpenZeppelin's
 * JavaScript library: `StandardMerkleTree.of(rows, ["uint256","address","uint32","uint32","uint64","uint128"],
 * { sortLeaves: false })` with each row given as `[index, user, provider, model, tokens, amount]`.
 * Proofs from that library verify with `MerkleProof.verify` against {root}.
 * @dev Leaves are `keccak256(bytes.concat(keccak256(abi.encode(index, charge))))` (double hashed, so a leaf can
 * never be confused with an inner node). The tree has the library's layout: an array of `2n - 1` nodes where
 * leaf `i` sits at position `2n - 2 - i` and node `k` hashes its children `2k + 1` and `2k + 2` as a sorted pair.
 */
library ChargeMerkle {
    /// @notice The leaf of row `index` of a batch: `keccak256(bytes.concat(keccak256(abi.encode(index, user,
    /// provider, model, tokens, amount))))`, computed in scratch memory without allocating.
    function leaf(uint256 index, address user, uint256 provider, uint256 model, uint256 tokens, uint256 amount)
        internal
        pure
        returns (bytes32 value)
    {
        assembly ("memory-safe") {
            // Scratch use of free memory (not allocated): [index, user, provider, model, tokens, amount].
            let ptr := mload(0x40)
            mstore(ptr, index)
            mstore(add(ptr, 0x20), and(user, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(ptr, 0x40), provider)
            mstore(add(ptr, 0x60), model)
            mstore(add(ptr, 0x80), tokens)
            mstore(add(ptr, 0xa0), amount)
            mstore(0x00, keccak256(ptr, 0xc0))
            value := keccak256(0x00, 0x20)
        }
    }

    /**
     * @notice Root of the tree whose leaves are `leaves[0..count)`, in that order. Zero when `count` is zero.
     * @dev Overwrites `leaves`' memory beyond `count` only through a fresh allocation; `leaves` itself is
     * left intact. Cost is one keccak per inner node (`count - 1` of them) and no storage access.
     */
    function root(bytes32[] memory leaves, uint256 count) internal pure returns (bytes32 result) {
        if (count == 0) return bytes32(0);
        if (count == 1) return leaves[0];
        assembly ("memory-safe") {
            // tree: 2*count - 1 words, allocated after the free memory pointer.
            let size := sub(shl(1, count), 1)
            let tree := mload(0x40)
            mstore(0x40, add(tree, shl(5, size)))
            // Leaf i goes to position size - 1 - i.
            let src := add(leaves, 0x20)
            let last := add(tree, shl(5, sub(size, 1)))
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                mstore(sub(last, shl(5, i)), mload(add(src, shl(5, i))))
            }
            // Inner nodes k = count - 2 down to 0: hash children 2k+1 and 2k+2 as a sorted pair.
            for { let k := sub(count, 1) } gt(k, 0) {} {
                k := sub(k, 1)
                let left := add(tree, shl(5, add(shl(1, k), 1)))
                let a := mload(left)
                let b := mload(add(left, 0x20))
                switch lt(a, b)
                case 1 {
                    mstore(0x00, a)
                    mstore(0x20, b)
                }
                default {
                    mstore(0x00, b)
                    mstore(0x20, a)
                }
                mstore(add(tree, shl(5, k)), keccak256(0x00, 0x40))
            }
            result := mload(tree)
        }
    }
}
