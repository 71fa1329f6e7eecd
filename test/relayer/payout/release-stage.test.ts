/**
 * The release stage beside the settler, as `relayer start` wires it (relayer/settler/runtime.ts), against a real
 * `hardhat node` and a real Redis: batches are released once their dispute window closed and not before, through the
 * settler's key and nonce sequence; two hosts on one Redis and chain release each batch once with no failed
 * transaction and no warning; a restart finds batches settled while it was down from the BatchSettled logs.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { type HDNodeWallet, Transaction, Wallet } from "ethers";
import type { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";

import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { buildReport, MonitorCollector, renderReport, type ChainPayouts } from "../../../relayer/monitor/index.js";
import { PayoutMetrics } from "../../../relayer/payout/metrics.js";
import { ReleaseSchedule } from "../../../relayer/payout/release-schedule.js";
import { ReleaseStage } from "../../../relayer/payout/release-stage.js";
import { RpcPool } from "../../../relayer/settler/rpc-pool.js";
import type { Settler } from "../../../relayer/settler/settler.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, settleReceipts, type Pipeline } from "../../helpers/pipeline.js";
import { parseExposition, total, type Exposition } from "../../helpers/prometheus.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";

const WINDOW = 3600; // AutoPayLLM's default dispute window

interface Host {
  p: Pipeline;
  stage: ReleaseStage;
  logs: Array<{ level: number; msg: string }>;
  scrape(): Promise<Exposition>;
}

describe("relayer: the release stage (payout) on a hardhat node", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;
  const hosts: Host[] = [];

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
    for (const host of hosts.splice(0)) {
      await host.stage.stop();
      await host.p.settler.stop();
    }
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  /** One relayer host: settler + release stage on this chain and prefix, wired as runtime.ts wires them. */
  function host(options: { intervalMs?: number; lookbackBlocks?: number; stuckAfterMs?: number } = {}): Host {
    const logs: Host["logs"] = [];
    const registry = new Registry();
    const metrics = new PayoutMetrics(registry);
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    let settler: Settler | null = null;
    const stage = new ReleaseStage({
      schedule: new ReleaseSchedule(redis, prefix, "local"),
      rpc: new RpcPool([node.url], { timeoutMs: 5000 }),
      router: suite.routerAddress,
      intervalMs: options.intervalMs ?? 100,
      lookbackBlocks: options.lookbackBlocks ?? 100_000,
      logChunkBlocks: 50,
      active: () => settler?.lease.held ?? false,
      onReady: () => settler?.poke(),
      logger: logger.child({ stage: "release" }),
      events: metrics.events("local"),
    });
    metrics.watch("local", stage.schedule);
    const p = pipeline({
      suite,
      rpcUrls: [node.url],
      redis,
      prefix,
      archiveDir,
      settler: {
        side: stage,
        onFinal: (record) => stage.settled(record),
        leaseTtlMs: 1000,
        logger: logger.child({ stage: "settler" }),
        ...(options.stuckAfterMs === undefined ? {} : { stuckAfterMs: options.stuckAfterMs }),
      },
    });
    settler = p.settler;
    const made = { p, stage, logs, scrape: async () => parseExposition(await registry.metrics()) };
    hosts.push(made);
    return made;
  }

  /** Settles one batch of `tokens` openai calls through `h`'s batcher and settler (the lease released after). */
  async function settleOne(h: Host, tokens: number): Promise<{ batchId: string; escrowed: bigint }> {
    const record = await settleReceipts(h.p, [receipt(suite.payers[0]!.address, "openai", "gpt-4-turbo", tokens)]);
    return { batchId: record.batchId, escrowed: BigInt(record.outcome!.escrowed) };
  }

  /** Starts `h`'s settler loop and release stage (settleReceipts leaves the settler marked running: reset first). */
  function run(h: Host): void {
    (h.p.settler as unknown as { running: boolean }).running = false;
    h.p.settler.start();
    h.stage.start();
  }

  async function pause(h: Host): Promise<void> {
    await h.stage.stop();
    await h.p.settler.stop();
  }

  async function advance(seconds: number): Promise<void> {
    await node.rpc("evm_increaseTime", [seconds]);
    await node.rpc("evm_mine", []);
  }

  async function status(batchId: string): Promise<number> {
    return Number((await suite.router.batchInfo(batchId)).status);
  }

  async function until(what: string, done: () => Promise<boolean>, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Every transaction the settler's key sent in blocks `from`..head, with its receipt status. */
  async function relayerTxs(from: number): Promise<Array<{ hash: string; ok: boolean; nonce: number }>> {
    const relayer = new Wallet(suite.relayerKey).address.toLowerCase();
    const head = Number(BigInt(await node.rpc<string>("eth_blockNumber")));
    const out = [];
    for (let n = from; n <= head; n++) {
      const block = (await suite.provider.getBlock(n, true))!;
      for (const tx of block.prefetchedTransactions) {
        if (tx.from.toLowerCase() !== relayer) continue;
        out.push({ hash: tx.hash, ok: (await suite.provider.getTransactionReceipt(tx.hash))!.status === 1, nonce: tx.nonce });
      }
    }
    return out;
  }

  it("releases a batch whose window closed through the settler's key, and not one still in its window", async function () {
    const h = host();
    const closed = await settleOne(h, 5000);
    await advance(WINDOW + 1);
    const open = await settleOne(h, 3000);
    const schedule = new ReleaseSchedule(redis, prefix, "local");
    expect((await schedule.entries()).map((e) => e.batchId).sort()).to.deep.equal([closed.batchId, open.batchId].sort());

    run(h);
    await until("the closed batch's release", async () => (await status(closed.batchId)) === 2);
    await new Promise((resolve) => setTimeout(resolve, 500)); // more looks: the open batch stays escrowed
    expect(await status(open.batchId)).to.equal(1);
    expect(await suite.router.credits(1)).to.equal(closed.escrowed);
    expect(await suite.router.totalEscrow()).to.equal(open.escrowed);
    expect((await schedule.entries()).map((e) => e.batchId)).to.deep.equal([open.batchId]);
    expect(await h.p.store.side()).to.equal(null);
    // the release took a nonce of the settler's sequence: a batch settled after it gets the next one
    await pause(h);
    const later = await settleOne(h, 1000);
    expect(await status(later.batchId)).to.equal(1);
    expect(h.logs.filter((l) => l.level >= 40), JSON.stringify(h.logs.filter((l) => l.level >= 40))).to.deep.equal([]);
    expect(h.logs.some((l) => l.msg === "batch released to its providers' credits")).to.equal(true);
    let metrics = await h.scrape();
    expect(total(metrics, "agentgpt_payout_releases_total", { chain: "local", outcome: "released" })).to.equal(1);
    expect(total(metrics, "agentgpt_payout_fees_paid_native_total", { chain: "local" })).to.be.greaterThan(0);
    expect(total(metrics, "agentgpt_payout_batches_awaiting_release", { chain: "local" })).to.equal(2); // open, later

    // once its window closes, the other one goes too; a batch someone else released first is a no-op
    await advance(WINDOW + 1);
    await suite.router.connect(new Wallet(suite.relayerKey, suite.provider)).release(later.batchId).then((tx) => tx.wait());
    run(h);
    await until("the second release", async () => (await status(open.batchId)) === 2 && (await schedule.size()) === 0);
    expect(await suite.router.totalEscrow()).to.equal(0n);
    expect(h.logs.filter((l) => l.level >= 40)).to.deep.equal([]);
    // counted right after the batch leaves the schedule (the probe above may see the removal a moment before)
    await until("the releases counted", async () => total(await h.scrape(), "agentgpt_payout_releases_total", { chain: "local" }) === 3);
    metrics = await h.scrape();
    expect(total(metrics, "agentgpt_payout_releases_total", { chain: "local", outcome: "released" })).to.equal(2);
    expect(total(metrics, "agentgpt_payout_releases_total", { chain: "local", outcome: "elsewhere" })).to.equal(1);
    expect(total(metrics, "agentgpt_payout_releases_total", { chain: "local", outcome: "failed" })).to.equal(0);
    expect(total(metrics, "agentgpt_payout_batches_awaiting_release", { chain: "local" })).to.equal(0);
  });

  it("two hosts on one Redis and chain: each batch released once, no failed transaction, no warning", async function () {
    const a = host();
    const batches: Array<{ batchId: string; escrowed: bigint }> = [];
    for (const tokens of [1000, 2000, 3000, 4000]) batches.push(await settleOne(a, tokens));
    const b = host();
    await advance(WINDOW + 1);
    const from = Number(BigInt(await node.rpc<string>("eth_blockNumber"))) + 1;
    for (const h of [a, b]) run(h);
    // the lease moves from one host to the other while they work: stop the holder once, it comes back later
    await until("a first release", async () => (await suite.router.totalCredits()) > 0n);
    const holder = a.p.settler.lease.held ? a : b;
    await holder.p.settler.stop();
    await until("every release", async () => (await Promise.all(batches.map((x) => status(x.batchId)))).every((s) => s === 2));
    holder.p.settler.start();
    // a second round with both hosts up again (either may hold the lease): batches settled by another relayer
    const elsewhere = pipeline({ suite, rpcUrls: [node.url], redis, prefix: `${prefix}-other`, archiveDir });
    for (const tokens of [1500, 2500]) {
      const record = await settleReceipts(elsewhere, [receipt(suite.payers[2]!.address, "openai", "gpt-4-turbo", tokens)]);
      batches.push({ batchId: record.batchId, escrowed: BigInt(record.outcome!.escrowed) });
    }
    await dropPrefix(redis, `${prefix}-other`);
    await advance(WINDOW + 1);
    await until("the second round's releases", async () => (await Promise.all(batches.map((x) => status(x.batchId)))).every((s) => s === 2));
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const released = await suite.router.queryFilter(suite.router.filters.BatchReleased(), from);
    expect(released.map((e) => e.args.batchId).sort()).to.deep.equal(batches.map((x) => x.batchId).sort());
    const txs = await relayerTxs(from);
    expect(txs.filter((t) => !t.ok)).to.deep.equal([]);
    expect(txs.length).to.equal(batches.length + 2); // a release each, and the other relayer's two settlements
    expect(await suite.router.credits(1)).to.equal(batches.reduce((sum, x) => sum + x.escrowed, 0n));
    const warnings = [...a.logs, ...b.logs].filter((l) => l.level >= 40);
    expect(warnings, JSON.stringify(warnings)).to.deep.equal([]);
  });

  it("after a restart, releases batches settled while it was down (BatchSettled logs from the stored cursor)", async function () {
    const first = host({ lookbackBlocks: 0 });
    await first.p.settler.lease.acquire();
    await first.stage.tick(); // the first look stores the cursor at the head
    await first.p.settler.lease.release();
    await first.stage.stop();
    const schedule = new ReleaseSchedule(redis, prefix, "local");
    const cursor = (await schedule.cursor())!;
    expect(cursor).to.equal(Number(BigInt(await node.rpc<string>("eth_blockNumber"))) + 1);

    // while no relayer of this prefix runs, another one (its own Redis keys) settles a batch on this router
    const elsewhere = pipeline({ suite, rpcUrls: [node.url], redis, prefix: `${prefix}-other`, archiveDir });
    const record = await settleReceipts(elsewhere, [receipt(suite.payers[1]!.address, "anthropic", "claude-3-opus", 4000)]);
    expect(await schedule.size()).to.equal(0);
    await advance(WINDOW + 1);

    const restarted = host({ lookbackBlocks: 0 });
    run(restarted);
    await until("the release of the batch settled while down", async () => (await status(record.batchId)) === 2);
    expect(await suite.router.credits(2)).to.equal(BigInt(record.outcome!.escrowed));
    expect((await schedule.cursor())!).to.be.greaterThan(cursor);
    expect(restarted.logs.filter((l) => l.level >= 40)).to.deep.equal([]);
    await dropPrefix(redis, `${prefix}-other`);
  });

  /**
   * A release of `batchId` signed by `key` with `nonce` and stored as `h`'s side transaction in `state`, as a settler
   * that then died (or lost the key) left it; returns its hash.
   */
  async function storedRelease(
    h: Host,
    key: Wallet | HDNodeWallet,
    batchId: string,
    nonce: number,
    state: "signed" | "sent",
    sentAt = Date.now(),
  ): Promise<string> {
    const data = suite.router.interface.encodeFunctionData("release", [batchId]);
    const fees = { maxFeePerGas: 100n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n };
    const raw = await key.signTransaction({ type: 2, chainId: suite.chainId, nonce, to: suite.routerAddress, data, gasLimit: 200_000n, ...fees });
    const hash = Transaction.from(raw).hash!;
    await h.p.store.assignSideNonce(key.address, {
      id: batchId,
      kind: "release",
      data,
      state,
      nonce,
      gasLimit: "200000",
      txs: [{ hash, raw, maxFeePerGas: fees.maxFeePerGas.toString(), maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(), sentAt }],
    });
    return hash;
  }

  it("a release signed and stored but never broadcast (the holder died) is broadcast by the next holder, once; the next batch takes the next nonce", async function () {
    const h = host();
    const batch = await settleOne(h, 4200);
    await advance(WINDOW + 1);
    // the holder signed the release and stored it with its nonce, then died before broadcasting it
    const relayer = new Wallet(suite.relayerKey);
    const nonce = Math.max(await h.p.store.nextNonce(relayer.address), await suite.provider.getTransactionCount(relayer.address, "latest"));
    const hash = await storedRelease(h, relayer, batch.batchId, nonce, "signed");
    expect(await suite.provider.getTransaction(hash)).to.equal(null);

    const next = host();
    run(next);
    await until("the stored release mined", async () => (await status(batch.batchId)) === 2 && (await next.p.store.side()) === null);
    expect((await suite.provider.getTransactionReceipt(hash))!.status).to.equal(1); // the stored transaction itself
    const from = (await suite.provider.getTransactionReceipt(hash))!.blockNumber;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const txs = await relayerTxs(from);
    expect(txs).to.deep.equal([{ hash, ok: true, nonce }]); // not sent twice
    expect(await h.p.store.nextNonce(relayer.address)).to.equal(nonce + 1);
    await pause(next);
    const after = await settleOne(next, 1200);
    expect((await next.p.store.get(after.batchId))!.nonce).to.equal(nonce + 1);
    expect(next.logs.filter((l) => l.level >= 40)).to.deep.equal([]);
  });

  it("a stuck release signed by a key the settler no longer holds is warned about, given up, and sent with the active key: released once", async function () {
    // The attack on liveness: a key rotated away (or revoked after a leak) left a release that never mines (here the
    // node refuses it: that key has no gas money). It can only be rebroadcast, and the one side slot would block every
    // later release: providers unpaid, and nothing said so.
    const h = host({ stuckAfterMs: 200 });
    const batch = await settleOne(h, 4200);
    await advance(WINDOW + 1);
    const gone = Wallet.createRandom();
    const hash = await storedRelease(h, gone, batch.batchId, 0, "sent", Date.now() - 1000);
    const from = Number(BigInt(await node.rpc<string>("eth_blockNumber")));
    run(h);
    await until("the batch released", async () => (await status(batch.batchId)) === 2 && (await h.p.store.side()) === null);
    await pause(h);
    const warnings = h.logs.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings.some((msg) => msg.includes("signed by a key this settler no longer holds"))).to.equal(true);
    expect(warnings.some((msg) => msg.startsWith("gave up a release transaction"))).to.equal(true);
    expect(await suite.provider.getTransaction(hash)).to.equal(null); // the unheld key's transaction never went in
    const txs = await relayerTxs(from + 1);
    expect(txs).to.have.length(1); // released once, by the settler's active key, with no failed transaction
    expect(txs[0]!.ok).to.equal(true);
    // the only errors: the node refusing the unheld key's rebroadcasts
    expect([...new Set(h.logs.filter((l) => l.level >= 50).map((l) => l.msg))]).to.deep.equal(["broadcast refused"]);
  });

  it("the monitor shows escrowed, releasable, released and withdrawn apart: settle, window closes, release, withdraw", async function () {
    const file = join(archiveDir, "relayer.yaml");
    await writeFile(
      file,
      `token: { symbol: AGPT, decimals: 18 }
redis: { url: "${REDIS_URL}", prefix: ${prefix} }
chains:
  local: { chain_id: ${suite.chainId}, rpc_urls: ["${node.url}"], router: "${suite.routerAddress}" }
archive: { dir: ${archiveDir} }
routes:
  - route: mission_critical
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai]
`,
    );
    const collector = await MonitorCollector.open(loadRelayerConfig(file), { windowMs: 86_400_000 });
    const money = async (): Promise<Omit<ChainPayouts, "chain" | "token">> => {
      const report = buildReport(await collector.snapshot(), { granularity: "provider" });
      expect(renderReport(report)).to.include("│ AGPT on local");
      const [{ escrowed, releasable, releasableBatches, released, withdrawn }] = report.payouts as [ChainPayouts];
      return { escrowed, releasable, releasableBatches, released, withdrawn };
    };
    try {
      const h = host();
      const one = await settleOne(h, 5000);
      const two = await settleOne(h, 2500);
      const total = one.escrowed + two.escrowed;
      expect(await money()).to.deep.equal({ escrowed: total, releasable: 0n, releasableBatches: 0, released: 0n, withdrawn: 0n });
      await advance(WINDOW + 1);
      expect(await money()).to.deep.equal({ escrowed: 0n, releasable: total, releasableBatches: 2, released: 0n, withdrawn: 0n });
      run(h);
      await until("both releases", async () => (await status(one.batchId)) === 2 && (await status(two.batchId)) === 2);
      await pause(h);
      expect(await money()).to.deep.equal({ escrowed: 0n, releasable: 0n, releasableBatches: 0, released: total, withdrawn: 0n });
      const payee = suite.payees[0]!; // openai's
      await (await suite.admin.sendTransaction({ to: payee.address, value: 10n ** 18n })).wait();
      await (await suite.router.connect(payee).withdrawCredits(1)).wait();
      expect(await money()).to.deep.equal({ escrowed: 0n, releasable: 0n, releasableBatches: 0, released: 0n, withdrawn: total });
    } finally {
      await collector.close();
    }
  });
});
