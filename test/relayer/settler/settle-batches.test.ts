/**
 * Batcher and settler in this process, against a real `hardhat node` over JSON-RPC and a real Redis: receipts in,
 * exact on-chain totals out.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet } from "ethers";
import type { Redis } from "ioredis";

import { deriveBatchId } from "../../../relayer/batcher/batch-file.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, sealNow, settleAll } from "../../helpers/pipeline.js";
import { expectedCharges, receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

describe("relayer: batcher + settler on a hardhat node", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  beforeEach(async function () {
    suite = await deployChainSuite(node.url);
    prefix = uniquePrefix();
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-archive-"));
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  function build(options: { maxReceipts?: number } = {}) {
    return pipeline({ suite, rpcUrls: [node.url], redis, prefix, archiveDir, ...options });
  }

  async function deposits(): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    for (const payer of suite.payers) out.set(payer.address.toLowerCase(), await suite.router.balanceOf(payer.address));
    return out;
  }

  it("charges every payer and escrows for every provider exactly the sum of the priced receipts", async function () {
    const p = build({ maxReceipts: 25 });
    const { batcher, store, archive } = p;
    const [a, b, c] = suite.payers;
    const receipts: Receipt[] = [];
    for (let i = 0; i < 60; i++) {
      const payer = [a!, b!, c!][i % 3]!.address;
      const [provider, model] = [["openai", "gpt-4-turbo"], ["anthropic", "claude-3-opus"], ["groq", "mixtral-8x22b"]][i % 3 === 0 ? 0 : (i % 7) % 3]!;
      receipts.push(receipt(payer, provider!, model!, 1 + ((i * 7919) % 5000)));
    }
    const before = await deposits();
    await batcher.take(receipts.slice(0, 40));
    await batcher.take(receipts.slice(20)); // overlaps: re-delivered receipts are not batched twice
    await sealNow(p);
    await settleAll(p);

    const finals = await store.finalIds();
    expect(finals.length).to.equal(3); // 25 + 25 + 10
    const expected = expectedCharges(receipts);
    const after = await deposits();
    for (const [payer, amount] of expected.byPayer) expect(before.get(payer)! - after.get(payer)!, payer).to.equal(amount);
    let escrow = 0n;
    for (const batchId of finals) {
      const [providers, amounts] = await suite.router.batchShares(batchId);
      providers.forEach((p, i) => (escrow += amounts[i]!));
      const record = (await store.get(batchId))!;
      expect(record.outcome!.rejected).to.deep.equal([]);
      // the archived file is the one whose CID is on-chain, and the batch id is derived from its receipts root
      const bytes = (await archive.readBytes("local", batchId))!;
      expect(record.outcome!.dataCid).to.equal(await contentId(bytes));
      const file = (await archive.read("local", batchId))!;
      expect(deriveBatchId(suite.chainId, suite.routerAddress, file.receiptsRoot)).to.equal(batchId);
      expect((await suite.router.batchInfo(batchId)).receiptsRoot).to.equal(file.receiptsRoot);
    }
    const total = [...expected.byProvider.values()].reduce((x, y) => x + y, 0n);
    expect(escrow).to.equal(total);
    expect(await suite.router.totalEscrow()).to.equal(total);
    const stats = await store.stats();
    expect(stats.receipts_settled).to.equal(60);
    expect(stats.batches_final).to.equal(3);
  });

  it("reports rows the contract rejected, with their reasons, and never retries them", async function () {
    const p = build();
    const { batcher, store } = p;
    const [a] = suite.payers;
    const poor = Wallet.createRandom().address;
    const receipts = [
      receipt(a!.address, "openai", "gpt-4-turbo", 1000),
      receipt(poor, "openai", "gpt-4-turbo", 1000), // no deposit, no allowance
      receipt(a!.address, "openai", "unknown-model", 1000), // not registered on-chain
      receipt(a!.address, "nobody", "gpt-4-turbo", 1000), // provider not registered
    ];
    await batcher.take(receipts);
    await sealNow(p);
    await settleAll(p);
    const [batchId] = await store.finalIds();
    const record = (await store.get(batchId!))!;
    const reasons = record.outcome!.rejected.map(([, reason]) => reason).sort();
    expect(reasons).to.deep.equal(["InsufficientFunds", "ModelNotPriced", "UnknownProvider"]);
    const stats = await store.stats();
    expect(stats.receipts_rejected).to.equal(3);
    expect(stats.receipts_settled).to.equal(1);
    expect(stats.receipts_rejected_InsufficientFunds).to.equal(1);
    // nothing is resent: the ledger is empty and one transaction was mined
    expect(await store.active()).to.deep.equal([]);
    expect(record.txs.length).to.equal(1);
    expect(await suite.router.balanceOf(a!.address)).to.equal(10_000n * AGPT - BigInt(receipts[0]!.amount));
  });
});
