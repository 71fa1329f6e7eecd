// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ChargeMerkle} from "../../contracts/libraries/ChargeMerkle.sol";
import {ReferenceMerkle} from "./utils/ReferenceMerkle.sol";
import {TestBase} from "./utils/TestBase.sol";

contract ChargeMerkleTest is TestBase {
    function _leaves(uint256 seed, uint256 n) private pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            leaves[i] = ChargeMerkle.leaf(
                i, address(uint160(r)), (r >> 160) % 7, (r >> 170) % 5, (r >> 180) % 1e9, (r >> 200) % 1e18
            );
        }
    }

    /// @notice The optimised root equals the reference tree's root, and every leaf's proof verifies against it.
    function testFuzz_rootMatchesReferenceAndProofsVerify(uint256 seed, uint256 count) public pure {
        uint256 n = bound(count, 1, 70);
        bytes32[] memory leaves = _leaves(seed, n);
        bytes32[] memory nodes = ReferenceMerkle.tree(leaves);
        bytes32 root = ChargeMerkle.root(leaves, n);
        assertEq(root, nodes[0], "root");
        for (uint256 i = 0; i < n; i++) {
            assertTrue(MerkleProof.verify(ReferenceMerkle.proof(nodes, n, i), root, leaves[i]), "proof");
        }
    }

    /// @notice A leaf proven under another index never verifies (the index is inside the leaf).
    function testFuzz_indexIsBound(uint256 seed, uint256 count, uint256 pick) public pure {
        uint256 n = bound(count, 2, 40);
        uint256 i = bound(pick, 0, n - 1);
        bytes32[] memory leaves = _leaves(seed, n);
        bytes32[] memory nodes = ReferenceMerkle.tree(leaves);
        uint256 r = uint256(keccak256(abi.encode(seed, i)));
        bytes32 moved = ChargeMerkle.leaf(
            i + n, address(uint160(r)), (r >> 160) % 7, (r >> 170) % 5, (r >> 180) % 1e9, (r >> 200) % 1e18
        );
        assertTrue(!MerkleProof.verify(ReferenceMerkle.proof(nodes, n, i), nodes[0], moved), "moved leaf");
    }

    function test_emptyAndSingle() public pure {
        bytes32[] memory none = new bytes32[](0);
        assertEq(ChargeMerkle.root(none, 0), bytes32(0), "empty");
        bytes32[] memory one = _leaves(7, 1);
        assertEq(ChargeMerkle.root(one, 1), one[0], "single");
    }
}
