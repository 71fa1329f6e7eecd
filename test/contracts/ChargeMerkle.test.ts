import { expect } from "chai";
import { network } from "hardhat";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

import { ROW_LEAF_ENCODING, buildRowsTree, rowLeaf, type Charge } from "../../relayer/batcher/rows-tree.js";
import { prng } from "../../bench/workload.js";

const { ethers } = await network.create();

function randomRows(seed: number, count: number): Charge[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => ({
    user: ethers.getAddress(ethers.hexlify(ethers.randomBytes(20))),
    provider: 1 + Math.floor(next() * 5),
    model: 1 + Math.floor(next() * 3),
    tokens: BigInt(1 + Math.floor(next() * 1e9)),
    amount: BigInt(1 + Math.floor(next() * 1e15)) * 1000n,
  }));
}

describe("ChargeMerkle (on-chain) against @openzeppelin/merkle-tree", function () {
  it("hashes a row leaf exactly like standardLeafHash", async function () {
    const harness = await ethers.deployContract("ChargeMerkleHarness");
    for (const [i, r] of randomRows(1, 5).entries()) {
      const tree = StandardMerkleTree.of([rowLeaf(i, r)], [...ROW_LEAF_ENCODING], { sortLeaves: false });
      expect(await harness.leaf(i, r.user, r.provider, r.model, r.tokens, r.amount)).to.equal(tree.leafHash(rowLeaf(i, r)));
    }
  });

  it("builds the same root for every size from 1 to 40 leaves, and proofs from the library verify", async function () {
    const harness = await ethers.deployContract("ChargeMerkleHarness");
    for (let n = 1; n <= 40; n++) {
      const rows = randomRows(100 + n, n);
      const leaves = await Promise.all(rows.map((r, i) => harness.leaf(i, r.user, r.provider, r.model, r.tokens, r.amount)));
      const tree = buildRowsTree(rows);
      expect(await harness.root(leaves), `n=${n}`).to.equal(tree.root);
      const lib = StandardMerkleTree.of(rows.map((r, i) => rowLeaf(i, r)), [...ROW_LEAF_ENCODING], { sortLeaves: false });
      for (let i = 0; i < n; i += 7) expect(lib.verify(i, tree.proof(i))).to.equal(true);
    }
  });

  it("returns zero for no leaves", async function () {
    const harness = await ethers.deployContract("ChargeMerkleHarness");
    expect(await harness.root([])).to.equal(ethers.ZeroHash);
  });
});
