/**
 * Batcher and settler in this process, against a real `hardhat node` over JSON-RPC and a real Redis: receipts in,
 * exact on-chain totals out.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Contract, Wallet, id as keccakText } from "ethers";
import type { Redis } from "ioredis";

import { deriveBatchId } from "../../../relayer/batcher/batch-file.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import { callsFromOf, readUsageBucket, UsageBucketError } from "../../../relayer/batcher/usage-bucket.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { DEFAULT_USAGE_BUCKET, pipeline, sealNow, settleAll, type Pipeline } from "../../helpers/pipeline.js";
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
      const info = await suite.router.batchInfo(batchId);
      for (let k = 0n; k < info.shareCount; k++) escrow += (await suite.router.batchShare(batchId, k)).amount;
      const record = (await store.get(batchId))!;
      expect(record.outcome!.rejected).to.deep.equal([]);
      // the archived file is the one whose CID is on-chain, and the batch id is derived from its receipts root
      const bytes = (await archive.readBytes("local", batchId))!;
      expect(record.outcome!.dataCid).to.equal(await contentId(bytes));
      const file = (await archive.read("local", batchId))!;
      expect(deriveBatchId(suite.chainId, suite.routerAddress, file.callsFrom, file.receiptsRoot)).to.equal(batchId);
      expect(info.receiptsRoot).to.equal(file.receiptsRoot);
      expect(info.callsFrom).to.equal(BigInt(file.callsFrom));
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

  /** Every final batch with its file and what the chain recorded, oldest first. */
  async function finalBatches(p: Pipeline) {
    const out = [];
    for (const batchId of await p.store.finalIds()) {
      const file = (await p.archive.read("local", batchId))!;
      const record = (await p.store.get(batchId))!;
      const info = await suite.router.batchInfo(batchId);
      out.push({ batchId, file, record, info });
    }
    return out;
  }

  it("cuts batches at usage-bucket boundaries of the calls' start time; a late receipt of an old bucket settles in that bucket", async function () {
    const bucket = await readUsageBucket(build().rpc, suite.routerAddress);
    expect(bucket).to.equal(DEFAULT_USAGE_BUCKET);
    const p = build({ maxReceipts: 1000 });
    const [a, b] = suite.payers;
    const now = Date.now();
    const current = callsFromOf(now, bucket);
    const old = current - 2 * bucket; // a backfill: calls of two hours ago
    const at = (from: number, offsetS: number) => (from + offsetS) * 1000;
    const oldReceipts = [
      receipt(a!.address, "openai", "gpt-4-turbo", 700, { startTime: at(old, 0) }), // the bucket's first second
      receipt(b!.address, "openai", "gpt-4-turbo", 300, { startTime: at(old, bucket - 1) + 999 }), // its last ms
      receipt(a!.address, "groq", "mixtral-8x22b", 900, { startTime: at(old, 17) }),
    ];
    const currentReceipts = [
      receipt(a!.address, "openai", "gpt-4-turbo", 500, { startTime: at(current, 0) }),
      receipt(b!.address, "groq", "mixtral-8x22b", 100, { startTime: now - 500 }),
    ];
    const before = await deposits();
    // one chunk, both buckets interleaved: the pool holds them together
    await p.batcher.take([oldReceipts[0]!, currentReceipts[0]!, oldReceipts[1]!, currentReceipts[1]!, oldReceipts[2]!]);
    expect((await p.pool.pending()).count).to.equal(5);
    await sealNow(p);
    await settleAll(p);

    const first = await finalBatches(p);
    expect(first).to.have.length(2);
    const byFrom = new Map(first.map((batch) => [batch.file.callsFrom, batch]));
    expect([...byFrom.keys()].sort()).to.deep.equal([old, current].sort());
    for (const [from, expected] of [[old, oldReceipts], [current, currentReceipts]] as const) {
      const batch = byFrom.get(from)!;
      expect(batch.file.receipts.map((r) => r.receipt.id).sort()).to.deep.equal(expected.map((r) => r.id).sort());
      expect(batch.file.usageBucket).to.equal(bucket);
      expect(batch.info.callsFrom).to.equal(BigInt(from)); // committed on-chain, not the settlement time
      expect(batch.record.outcome!.callsFrom).to.equal(from); // and in BatchSettled
      expect(batch.record.callsFrom).to.equal(from);
      expect(batch.batchId).to.equal(deriveBatchId(suite.chainId, suite.routerAddress, from, batch.file.receiptsRoot));
    }

    // A receipt of the old bucket arrives late (LiteLLM retried it, or the backfill found it): its own batch, same bucket.
    const late = receipt(b!.address, "openai", "gpt-4-turbo", 450, { startTime: at(old, 1234) });
    await p.batcher.take([late]);
    await sealNow(p);
    await settleAll(p);
    const all = await finalBatches(p);
    expect(all).to.have.length(3);
    const third = all.find((batch) => !first.some((f) => f.batchId === batch.batchId))!;
    expect(third.file.callsFrom).to.equal(old);
    expect(third.info.callsFrom).to.equal(BigInt(old));
    expect(third.file.receipts.map((r) => r.receipt.id)).to.deep.equal([late.id]);
    const block = await suite.provider.getBlock(third.record.block!);
    expect(block!.timestamp - old).to.be.greaterThan(bucket); // settled long after its bucket ended

    const expected = expectedCharges([...oldReceipts, ...currentReceipts, late]);
    const after = await deposits();
    for (const [payer, amount] of expected.byPayer) expect(before.get(payer)! - after.get(payer)!, payer).to.equal(amount);
    expect((await p.store.stats()).receipts_settled).to.equal(6);
  });

  it("seals a bucket bigger than maxReceipts as several batches of that bucket, never mixing in another bucket", async function () {
    const p = build({ maxReceipts: 3 });
    const [a] = suite.payers;
    const current = callsFromOf(Date.now(), DEFAULT_USAGE_BUCKET);
    const old = current - DEFAULT_USAGE_BUCKET;
    const receipts = [
      ...Array.from({ length: 4 }, (_, i) => receipt(a!.address, "openai", "gpt-4-turbo", 100 + i, { startTime: (old + 60 * i) * 1000 })),
      ...Array.from({ length: 2 }, (_, i) => receipt(a!.address, "openai", "gpt-4-turbo", 200 + i, { startTime: (current + i) * 1000 })),
    ];
    await p.batcher.take(receipts);
    await sealNow(p);
    await settleAll(p);
    const batches = await finalBatches(p);
    const sizes = batches.map((batch) => [batch.file.callsFrom, batch.file.receipts.length]).sort((x, y) => x[0]! - y[0]! || y[1]! - x[1]!);
    expect(sizes).to.deep.equal([[old, 3], [old, 1], [current, 2]]);
    for (const batch of batches) {
      for (const { receipt: r } of batch.file.receipts) expect(callsFromOf(r.startTime, DEFAULT_USAGE_BUCKET)).to.equal(batch.file.callsFrom);
    }
  });

  it("refuses for good, and reports, a batch whose receipts root another batch id already settled", async function () {
    const p = build();
    const [a] = suite.payers;
    const receipts = [receipt(a!.address, "openai", "gpt-4-turbo", 1000), receipt(a!.address, "openai", "gpt-4-turbo", 250)];
    await p.batcher.take(receipts);
    await p.batcher.tick(Date.now() + 1); // sealed, archived and handed to the settler's ledger, not sent yet
    const [queued] = await p.store.active();
    const file = (await p.archive.read("local", queued!.batchId))!;
    // The same receipts settled first under another batch id (another relayer, an older id derivation)
    const router = new Contract(suite.routerAddress, ["function settleBatchAt(bytes32, (address,uint32,uint32,uint64,uint128)[], bytes32, string, uint64)"], new Wallet(suite.relayerKey, suite.provider));
    const otherId = keccakText("another relayer's id for the same receipts");
    const charges = file.rows.map((row) => [row.user, row.provider, row.model, BigInt(row.tokens), BigInt(row.amount)]);
    await (await router.getFunction("settleBatchAt")(otherId, charges, file.receiptsRoot, queued!.cid, file.callsFrom)).wait();
    const before = await deposits();
    const signer = new Wallet(suite.relayerKey).address;
    const nonce = await suite.provider.getTransactionCount(signer);

    await settleAll(p);
    const record = (await p.store.get(queued!.batchId))!;
    expect(record.state).to.equal("refused");
    expect(record.note).to.contain(otherId).and.to.contain(file.receiptsRoot);
    expect(await p.store.active()).to.deep.equal([]);
    expect(await p.store.refusedIds()).to.deep.equal([queued!.batchId]);
    expect(await p.store.finalIds()).to.deep.equal([]);
    const stats = await p.store.stats();
    expect(stats.batches_refused).to.equal(1);
    expect(stats.receipts_refused).to.equal(2);
    expect(stats.receipts_settled ?? 0).to.equal(0);
    // nothing was sent, nothing charged twice; further passes leave it alone
    await p.settler.pass();
    await p.settler.pass();
    expect(await suite.provider.getTransactionCount(signer)).to.equal(nonce);
    expect(await deposits()).to.deep.equal(before);
    expect((await suite.router.batchInfo(queued!.batchId)).status).to.equal(0n);
    await p.settler.lease.release();
  });

  it("refuses for good a batch whose transaction reverted because another batch settled its receipts root first in the same block", async function () {
    const p = build();
    const [a] = suite.payers;
    const receipts = [receipt(a!.address, "groq", "mixtral-8x22b", 4000), receipt(a!.address, "groq", "mixtral-8x22b", 10)];
    await p.batcher.take(receipts);
    await p.batcher.tick(Date.now() + 1);
    const [queued] = await p.store.active();
    const file = (await p.archive.read("local", queued!.batchId))!;
    const rival = await suite.admin.getAddress();
    await (await suite.router.grantRole(await suite.router.RELAYER_ROLE(), rival)).wait();
    const before = await deposits();
    await node.rpc("evm_setAutomine", [false]);
    try {
      await p.settler.lease.acquire();
      (p.settler as unknown as { running: boolean }).running = true;
      await p.settler.pass(); // simulated fine, signed and broadcast: pending
      expect((await p.store.get(queued!.batchId))!.state).to.equal("sent");
      // the same receipts under another id, with a higher tip: mined first in the same block
      const otherId = keccakText("a rival relayer's batch of the same receipts");
      const charges = file.rows.map((row) => ({ user: row.user, provider: row.provider, model: row.model, tokens: BigInt(row.tokens), amount: BigInt(row.amount) }));
      await suite.router.settleBatchAt(otherId, charges, file.receiptsRoot, queued!.cid, file.callsFrom, {
        gasLimit: 2_000_000n,
        maxPriorityFeePerGas: 100n * 10n ** 9n,
        maxFeePerGas: 400n * 10n ** 9n,
      });
      await node.rpc("evm_mine", []);
    } finally {
      await node.rpc("evm_setAutomine", [true]);
    }
    const ours = await suite.provider.getTransactionReceipt((await p.store.get(queued!.batchId))!.txs[0]!.hash);
    expect(ours!.status).to.equal(0); // reverted: AutoPayLLMReceiptsRootUsed

    await settleAll(p); // the revert sends it back to the queue; the next simulation tells why, and it is refused
    const record = (await p.store.get(queued!.batchId))!;
    expect(record.state).to.equal("refused");
    expect(record.note).to.contain(keccakText("a rival relayer's batch of the same receipts"));
    expect((await p.store.stats()).batches_refused).to.equal(1);
    const after = await deposits();
    const payer = a!.address.toLowerCase();
    expect(before.get(payer)! - after.get(payer)!).to.equal(expectedCharges(receipts).byPayer.get(payer)); // charged once, by the rival
    await p.settler.lease.release();
  });

  it("fails clearly when the router cannot tell its usage bucket", async function () {
    const rpc = build().rpc;
    try {
      await readUsageBucket(rpc, Wallet.createRandom().address);
      expect.fail("read a usage bucket from an address without code");
    } catch (error) {
      expect(error).to.be.instanceOf(UsageBucketError);
      expect((error as Error).message).to.contain("usageBucket() returned nothing");
    }
  });
});
