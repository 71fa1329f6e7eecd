/**
 * Ingest and the batcher's pool through a real local Redis Cluster (three masters, one replica each, Debian's
 * redis-server started by the test): receipts spread over many slots, each billed once, and a master failed over
 * while POSTs are in flight with nothing lost and nothing taken twice.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Worker } from "bullmq";

import { BatchPool } from "../../../relayer/batcher/batch-pool.js";
import { redisSection } from "../../../relayer/config/sections/redis.js";
import {
  asRedis,
  connectRedis,
  createProducerRedis,
  createReceiptWorker,
  createWorkerRedis,
  isCluster,
  QueueUnavailableError,
  ReceiptQueue,
  type Receipt,
  type ReceiptBody,
  type RedisClient,
  type Submission,
} from "../../../relayer/queue/index.js";
import { deployChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline as settlementPipeline, sealNow, settleAll } from "../../helpers/pipeline.js";
import { expectedCharges, receipt as pricedReceipt } from "../../helpers/receipts.js";
import { type RedisClusterHandle, slotSpread, startRedisCluster } from "../../helpers/redis-cluster.js";
import { uniquePrefix } from "../../helpers/redis.js";

const PAYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const CHAINS = ["arbitrum", "polygon"];

function body(chain: string, tokens: number, startTime: number): ReceiptBody {
  const milli = BigInt(tokens) * 120_000_000_000_000_000n;
  return {
    v: 1, chain, payer: PAYER, provider: "openai", model: "gpt-4-turbo", route: "r", promptTokens: tokens, completionTokens: 0, tokens,
    amountMilli: milli.toString(), amount: ((milli + 999n) / 1000n).toString(), pricing: "per_1k_tokens", pricePer1k: "120000000000000000",
    responseCostUsd: null, capped: false, startTime, endTime: startTime + 100, latencyMs: 100, cacheHit: false, litellmCallId: null,
    litellmId: "x", litellmModel: "openai/gpt-4-turbo", modelGroup: null, litellmProvider: "openai", callType: null, keyAlias: null, keyHash: null,
    userId: null, teamId: null, endUserId: null, traceId: null, receivedAt: 1718035210000,
  };
}

/** POST `n` of `size` calls; every third POST re-sends half of the POST before it (LiteLLM retrying). */
function post(n: number, size: number): Submission[] {
  const own = Array.from({ length: size }, (_, i): Submission => {
    const key = `call-${n}-${i}`;
    return { kind: "receipt", key, fingerprint: "00000000000000a1", startTime: 1718035200000 + i, body: body(CHAINS[i % 2]!, 1 + i, 1718035200000 + i) };
  });
  return n % 3 === 2 ? [...own, ...post(n - 1, size).slice(0, size / 2)] : own;
}

describe("ingest and the batcher on a real Redis Cluster", function () {
  this.timeout(120_000);
  let cluster: RedisClusterHandle;
  let producer: RedisClient;
  const opened: Array<{ close(): Promise<unknown> }> = [];

  before(async function () {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    producer = createProducerRedis(cluster.url, { commandTimeoutMs: 5000 });
    await connectRedis(producer, cluster.url);
  });
  after(async function () {
    // bounded: a BullMQ worker blocked on a node that failed over may take long to notice
    for (const one of opened.reverse()) await Promise.race([one.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000))]);
    producer?.disconnect();
    await cluster?.stop();
  });

  /** A queue, and per chain a worker that takes chunks into that chain's BatchPool (as the settler runtime does). */
  async function pipeline(prefix: string) {
    const queue = new ReceiptQueue({ connection: producer, prefix, chains: CHAINS, dedupeTtlMs: 86_400_000 });
    opened.push(queue);
    const taken = new Map<string, number>();
    const pools = new Map<string, BatchPool>();
    const workers: Worker[] = [];
    for (const chain of CHAINS) {
      const connection = createWorkerRedis(cluster.url);
      opened.push({ close: async () => connection.disconnect() });
      const pool = new BatchPool(asRedis(connection), { prefix, chain });
      pools.set(chain, pool);
      const worker = createReceiptWorker({
        connection,
        prefix,
        chain,
        concurrency: 4,
        stalledIntervalMs: 2000,
        handler: async (receipts: Receipt[]) => {
          for (const receipt of receipts) taken.set(receipt.id, (taken.get(receipt.id) ?? 0) + 1);
          await pool.take(receipts, 3600);
        },
      });
      // a blocking read on a master that just became a replica is refused (UNBLOCKED); BullMQ retries it
      worker.on("error", () => undefined);
      workers.push(worker);
      opened.push({ close: () => worker.close(true) });
    }
    return { queue, taken, pools, workers };
  }

  /** Sends a POST as LiteLLM's logger would be retried: again after a 503, until it is acknowledged. */
  async function send(queue: ReceiptQueue, submissions: Submission[]): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        await queue.add(submissions);
        return attempt;
      } catch (error) {
        if (!(error instanceof QueueUnavailableError) || attempt >= 40) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  async function pooledIds(pools: Map<string, BatchPool>): Promise<string[]> {
    const ids: string[] = [];
    for (const pool of pools.values()) ids.push(...(await pool.pooled()).map((receipt) => receipt.id));
    return ids.sort();
  }

  async function until(what: string, check: () => Promise<boolean>, ms = 60_000) {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it("reads redis.cluster and redis+cluster:// from the config and builds Cluster clients that answer", async function () {
    const nodes = cluster.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }));
    expect(redisSection().parse({ cluster: cluster.seeds }).cluster).to.deep.equal(nodes);
    const fromUrl = redisSection().parse({ url: cluster.url });
    expect(fromUrl.cluster).to.deep.equal(nodes);
    expect(isCluster(producer)).to.equal(true);
    const worker = createWorkerRedis(fromUrl);
    try {
      expect(isCluster(worker)).to.equal(true);
      expect(await worker.set("{cfg}:probe", "1")).to.equal("OK");
      await worker.del("{cfg}:probe");
    } finally {
      worker.disconnect();
    }
  });

  it("closes a receipt queue opened a moment before on a fresh cluster connection without crashing the process", async function () {
    // A CLI command or a bench opens the queue, reads a figure and closes: BullMQ's queues then close before their
    // connection finished its start (cluster slots, INFO), and the start's failure ("Cluster is ended", once the
    // connection quits) was emitted as an 'error' nobody listened to any more: an uncaught exception.
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.prependListener("uncaughtException", record);
    try {
      for (let i = 0; i < 3; i++) {
        const connection = createProducerRedis(cluster.url, { commandTimeoutMs: 5000 });
        await connectRedis(connection, cluster.url); // as openReceiptQueue does
        const queue = new ReceiptQueue({ connection, prefix: uniquePrefix("quick-close"), chains: CHAINS, dedupeTtlMs: 86_400_000 });
        await queue.close();
        await connection.quit().catch(() => connection.disconnect());
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
    } finally {
      process.removeListener("uncaughtException", record);
    }
    expect(uncaught.map(String)).to.deep.equal([]);
  });

  it("queues every receipt once across many slots, and the batcher pools each once", async function () {
    const prefix = uniquePrefix("cl");
    const { queue, taken, pools } = await pipeline(prefix);
    const expected = new Set<string>();
    for (let n = 0; n < 12; n++) {
      const submissions = post(n, 100);
      for (const s of submissions) expected.add(s.key);
      await send(queue, submissions);
    }
    await until("every receipt pooled", async () => (await pooledIds(pools)).length >= expected.size);
    expect(await pooledIds(pools)).to.deep.equal([...expected].sort());
    expect([...taken.values()].every((count) => count === 1)).to.equal(true);
    const stats = await queue.store.stats();
    expect(stats.queued).to.equal(expected.size);
    expect(stats.duplicates).to.equal(4 * 50);

    const spread = await slotSpread(cluster.seeds, `{${prefix}:ingest:*}:seen:*`);
    expect(spread.keys).to.equal(expected.size);
    expect(spread.maxShare).to.be.below(0.05);
  });

  it("loses nothing and takes nothing twice while a master fails over during traffic", async function () {
    const prefix = uniquePrefix("clf");
    const { queue, taken, pools } = await pipeline(prefix);
    const expected = new Set<string>();
    let acknowledged = 0;
    const traffic = (async () => {
      for (let n = 0; n < 40; n++) {
        const submissions = post(n, 60);
        for (const s of submissions) expected.add(s.key);
        await send(queue, submissions);
        acknowledged += 1;
      }
    })();
    await until("traffic under way", async () => acknowledged >= 2);
    const failedOver = await cluster.failover();
    const duringFailover = acknowledged;
    await traffic;
    expect(duringFailover, "the failover finished after the traffic").to.be.below(40);
    expect(failedOver.from).to.not.equal(failedOver.to);
    expect((await cluster.roles()).get(failedOver.to)).to.equal("master");
    // POSTs that died between their steps are committed by the sweeper's recovery; here, directly
    for (const chain of CHAINS) await queue.store.recoverStaged(chain, Date.now() + 120_000);
    await queue.recover();
    await until("every receipt pooled", async () => (await pooledIds(pools)).length >= expected.size);
    expect(await pooledIds(pools)).to.deep.equal([...expected].sort());
    expect([...taken.values()].every((count) => count === 1), "a receipt handed to the batcher twice").to.equal(true);
    for (const chain of CHAINS) expect(await queue.store.pendingCount(chain)).to.equal(0);
  });

  it("settles on a hardhat node exactly what came in through the cluster (ingest, batcher, settler on cluster clients)", async function () {
    const node = await startHardhatNode();
    const archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-archive-"));
    const connection = createWorkerRedis(cluster.url);
    try {
      const suite = await deployChainSuite(node.url);
      const prefix = uniquePrefix("cls");
      const p = settlementPipeline({ suite, rpcUrls: [node.url], redis: asRedis(connection), prefix, archiveDir, maxReceipts: 25 });
      const queue = new ReceiptQueue({ connection: producer, prefix, chains: ["local"], dedupeTtlMs: 86_400_000 });
      opened.push(queue);
      const handed = new Set<string>();
      const worker = createReceiptWorker({
        connection,
        prefix,
        chain: "local",
        handler: async (receipts) => {
          await p.batcher.take(receipts);
          for (const one of receipts) handed.add(one.id);
        },
      });
      worker.on("error", () => undefined);
      opened.push({ close: () => worker.close(true) });
      const receipts: Receipt[] = [];
      for (let i = 0; i < 60; i++) {
        const payer = suite.payers[i % 3]!.address;
        const [provider, model] = [["openai", "gpt-4-turbo"], ["anthropic", "claude-3-opus"], ["groq", "mixtral-8x22b"]][i % 3]!;
        receipts.push(pricedReceipt(payer, provider!, model!, 1 + ((i * 7919) % 5000)));
      }
      const submissions = receipts.map(({ id, ...rest }): Submission => ({ kind: "receipt", key: id, fingerprint: "00000000000000b2", body: rest }));
      await send(queue, submissions.slice(0, 40));
      await send(queue, submissions.slice(20)); // overlaps: a re-send is not queued twice
      await until("every receipt handed to the batcher", async () => handed.size === 60);
      const before = new Map<string, bigint>();
      for (const payer of suite.payers) before.set(payer.address.toLowerCase(), await suite.router.balanceOf(payer.address));
      await sealNow(p);
      await settleAll(p);
      expect((await p.store.finalIds()).length).to.equal(3);
      const expected = expectedCharges(receipts);
      for (const [payer, amount] of expected.byPayer) {
        expect(before.get(payer)! - (await suite.router.balanceOf(payer)), payer).to.equal(amount);
      }
      expect(await suite.router.totalEscrow()).to.equal([...expected.byProvider.values()].reduce((x, y) => x + y, 0n));
      expect((await p.store.stats()).receipts_settled).to.equal(60);
    } finally {
      connection.disconnect();
      await node.stop();
      await rm(archiveDir, { recursive: true, force: true });
    }
  });
});

describe("ingest on a Redis Cluster that goes down entirely", function () {
  this.timeout(120_000);
  let cluster: RedisClusterHandle;
  let producer: RedisClient;
  let queue: ReceiptQueue;

  before(async function () {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    producer = createProducerRedis(cluster.url, { commandTimeoutMs: 5000 });
    await connectRedis(producer, cluster.url);
  });
  after(async function () {
    await queue?.close().catch(() => undefined);
    producer?.disconnect();
    await cluster?.stop();
  });

  async function until(what: string, check: () => Promise<boolean>, ms = 60_000) {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it("answers 503 at once while the whole cluster is down (no POST hangs), and keeps what it acknowledged when it is back", async function () {
    const prefix = uniquePrefix("cld");
    queue = new ReceiptQueue({ connection: producer, prefix, chains: CHAINS, dedupeTtlMs: 86_400_000 });
    const first = post(100, 40);
    await queue.add(first);
    // graceful stops (each node writes its append-only file), every node
    await Promise.all(cluster.nodes.map((node) => cluster.kill(node.port, "SIGTERM")));
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const error = await queue.add(post(101, 40)).then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(error).to.be.instanceOf(QueueUnavailableError);
      expect(Date.now() - started, "a POST waited for a cluster that is down").to.be.below(10_000);
    }
    for (const node of cluster.nodes) await cluster.restart(node.port);
    await cluster.ready();
    // the first POST, sent again: all duplicates (nothing acknowledged was lost); the refused one is taken now
    await until("the cluster takes writes again", async () => {
      try {
        await queue.add(post(101, 40));
        return true;
      } catch (error) {
        if (error instanceof QueueUnavailableError) return false;
        throw error;
      }
    });
    const again = await queue.add(first);
    expect(again.outcomes.every(({ outcome }) => outcome === "duplicate")).to.equal(true);
  });
});
