import { expect } from "chai";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

import { aggregate } from "../../../relayer/batcher/aggregate.js";
import { buildBatch, deriveBatchId } from "../../../relayer/batcher/batch-file.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import { RECEIPT_LEAF_ENCODING, buildReceiptsTree, canonicalJson, receiptLeaf } from "../../../relayer/batcher/receipts-tree.js";
import { receipt } from "../../helpers/receipts.js";

const PAYERS = ["0x1111111111111111111111111111111111111111", "0x2222222222222222222222222222222222222222", "0x0000000000000000000000000000000000000003"];
const registry = { providerId: (name: string) => ({ openai: 1, groq: 2 })[name] ?? 0, modelId: (name: string) => ({ "gpt-4-turbo": 1, "mixtral-8x22b": 2 })[name] ?? 0 };

function receipts(n: number) {
  return Array.from({ length: n }, (_, i) => receipt(PAYERS[i % 3]!, i % 2 ? "openai" : "groq", i % 2 ? "gpt-4-turbo" : "mixtral-8x22b", 1 + ((i * 7919) % 9000)));
}

describe("batcher: receipts tree, aggregation, batch file", function () {
  it("builds exactly OpenZeppelin's StandardMerkleTree (root and proofs) for 1 to 40 receipts", function () {
    for (let n = 1; n <= 40; n++) {
      const leaves = receipts(n).map((r, i) => receiptLeaf(i % 5, r));
      const ours = buildReceiptsTree(leaves);
      const lib = StandardMerkleTree.of(leaves, [...RECEIPT_LEAF_ENCODING], { sortLeaves: false });
      expect(ours.root, `n=${n}`).to.equal(lib.root);
      for (let i = 0; i < n; i += 3) expect(ours.proof(i)).to.deep.equal(lib.getProof(i));
    }
  });

  it("hashes a receipt as JSON with its keys sorted, whatever their order", function () {
    const r = receipt(PAYERS[0]!, "openai", "gpt-4-turbo", 10);
    const shuffled = Object.fromEntries(Object.entries(r).reverse()) as typeof r;
    expect(canonicalJson(shuffled)).to.equal(canonicalJson(r));
    const keys = Object.keys(JSON.parse(canonicalJson(r)));
    expect(keys).to.deep.equal([...keys].sort());
    expect(keys.length).to.equal(Object.keys(r).length);
  });

  it("aggregates rows per (payer, provider, model), charged ceil(sum(amountMilli)/1000), payers contiguous", function () {
    const rs = receipts(30).map((r, i) => ({ ...r, amountMilli: String(1000n * BigInt(i) + 1n) })); // every receipt has a fraction
    const { rows, receipts: ordered } = aggregate(rs, registry);
    expect(rows.map((row) => row.user.toLowerCase())).to.deep.equal([...rows.map((row) => row.user.toLowerCase())].sort());
    for (const [index, row] of rows.entries()) {
      const members = ordered.filter((o) => o.rowIndex === index).map((o) => o.receipt);
      const milli = members.reduce((sum, m) => sum + BigInt(m.amountMilli), 0n);
      expect(row.amount).to.equal((milli + 999n) / 1000n);
      expect(row.tokens).to.equal(members.reduce((sum, m) => sum + BigInt(m.tokens), 0n));
      expect(row.receipts).to.equal(members.length);
    }
    expect(ordered.length).to.equal(30);
  });

  it("is deterministic: the same receipts in any order give the same batch id, bytes and CID", async function () {
    const rs = receipts(25);
    const context = { chain: "local", chainId: 31337, router: PAYERS[0]!, usageBucket: 3600, registry };
    const from = callsFromOf(rs[0]!.startTime, 3600);
    const a = await buildBatch(rs, 1000, from, context);
    const b = await buildBatch([...rs].reverse(), 1000, from, context);
    expect(b.file.batchId).to.equal(a.file.batchId);
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).to.equal(true);
    expect(b.cid).to.equal(a.cid);
    expect(a.cid).to.equal(await contentId(a.bytes));
    expect(a.cid.startsWith("bafkrei")).to.equal(true);
    expect(a.file.callsFrom).to.equal(from);
    expect(a.file.batchId).to.equal(deriveBatchId(31337, PAYERS[0]!, from, a.file.receiptsRoot));
    const other = await buildBatch(rs.slice(1), 1000, from, context);
    expect(other.file.batchId).to.not.equal(a.file.batchId);
  });
});
