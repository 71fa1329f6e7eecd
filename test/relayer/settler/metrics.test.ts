/**
 * The settler's and batcher's metrics against a `hardhat node` and Redis: each counter moves where its event happens
 * (sealed, stuck, bumped or rebroadcast, final with the gas and fee the chain charged), and the gauges read at scrape
 * time follow the receipts from the pool to a batch in flight to final.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet } from "ethers";
import type { Redis } from "ioredis";
import { Registry } from "prom-client";

import { BatcherMetrics } from "../../../relayer/batcher/metrics.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { nativeOf, SettlerMetrics } from "../../../relayer/settler/metrics.js";
import type { SettlerOptions } from "../../../relayer/settler/settler.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, settleAll } from "../../helpers/pipeline.js";
import { parseExposition, total } from "../../helpers/prometheus.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

describe("relayer settler and batcher metrics", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
    suite = await deployChainSuite(node.url);
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  beforeEach(async function () {
    prefix = uniquePrefix();
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-archive-"));
  });
  afterEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  function build(settler: Partial<SettlerOptions>) {
    const registry = new Registry();
    const settlerMetrics = new SettlerMetrics(registry);
    const batcherMetrics = new BatcherMetrics(registry);
    const p = pipeline({
      suite,
      rpcUrls: [node.url],
      redis,
      prefix,
      archiveDir,
      settler: { ...settler, events: settlerMetrics.events("local") },
      batcher: { events: batcherMetrics.events("local") },
    });
    const signer = new Wallet(suite.relayerKey).address;
    settlerMetrics.watch("local", { store: p.store, balance: async () => BigInt(await p.rpc.request<string>("eth_getBalance", [signer, "latest"])) });
    settlerMetrics.watchRpc("settler", "local", p.rpc);
    batcherMetrics.watch("local", p.pool);
    return { p, signer, scrape: async () => parseExposition(await registry.metrics()) };
  }

  function someReceipts(count: number, run: string): Receipt[] {
    return Array.from({ length: count }, (_, i) =>
      receipt(suite.payers[i % suite.payers.length]!.address, i % 2 ? "openai" : "groq", i % 2 ? "gpt-4-turbo" : "mixtral-8x22b", 100 + i * 37 + run.length),
    );
  }

  it("follows receipts from the pool to a stuck, bumped batch to final, with the gas and fee the chain charged", async function () {
    const { p, signer, scrape } = build({ stuckAfterMs: 100 });
    const receipts = someReceipts(12, "bump");
    await p.batcher.take(receipts);
    let m = await scrape();
    expect(total(m, "agentgpt_batcher_receipts_pending", { chain: "local" })).to.equal(12);
    expect(total(m, "agentgpt_batcher_oldest_receipt_age_seconds", { chain: "local" })).to.be.within(0, 30);
    expect(total(m, "agentgpt_settler_receipts_pending", { chain: "local" })).to.equal(0);
    expect(total(m, "agentgpt_batcher_batches_sealed_total", { chain: "local" })).to.equal(0);

    await node.rpc("evm_setAutomine", [false]);
    await p.batcher.tick(Date.now() + 1);
    m = await scrape();
    expect(total(m, "agentgpt_batcher_batches_sealed_total", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_batcher_receipts_sealed_total", { chain: "local" })).to.equal(12);
    expect(total(m, "agentgpt_batcher_receipts_pending", { chain: "local" })).to.equal(0);
    expect(total(m, "agentgpt_batcher_oldest_receipt_age_seconds", { chain: "local" })).to.equal(0);
    expect(total(m, "agentgpt_settler_receipts_pending", { chain: "local" })).to.equal(12);
    expect(total(m, "agentgpt_settler_batches_open", { chain: "local", state: "queued" })).to.equal(1);

    await settleAll(p, async () => ((await p.store.active())[0]?.state ?? "") === "sent");
    m = await scrape();
    expect(total(m, "agentgpt_settler_batches_open", { chain: "local", state: "sent" })).to.equal(1);
    expect(total(m, "agentgpt_settler_batches_open", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_settler_transactions_stuck_total", { chain: "local" })).to.equal(0);
    await new Promise((r) => setTimeout(r, 150));
    await p.settler.pass(); // stuck: bumped
    m = await scrape();
    expect(total(m, "agentgpt_settler_transactions_stuck_total", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_settler_transactions_replaced_total", { chain: "local", mode: "bump" })).to.equal(1);
    expect(total(m, "agentgpt_settler_transactions_replaced_total", { chain: "local", mode: "rebroadcast" })).to.equal(0);
    expect(total(m, "agentgpt_settler_batches_final_total", { chain: "local" })).to.equal(0);

    await node.rpc("evm_mine", []);
    await node.rpc("evm_setAutomine", [true]);
    await settleAll(p, async () => (await p.store.active()).length === 0);
    await p.settler.lease.release();
    const [batchId] = await p.store.finalIds();
    const final = (await p.store.get(batchId!))!;
    const mined = await suite.provider.getTransactionReceipt(final.txHash!);
    m = await scrape();
    expect(total(m, "agentgpt_settler_batches_final_total", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_settler_receipts_settled_total", { chain: "local" })).to.equal(12);
    expect(total(m, "agentgpt_settler_gas_used_total", { chain: "local", outcome: "settled" })).to.equal(Number(mined!.gasUsed));
    expect(total(m, "agentgpt_settler_fees_paid_native_total", { chain: "local", outcome: "settled" })).to.equal(nativeOf(mined!.gasUsed * mined!.gasPrice));
    expect(total(m, "agentgpt_settler_fees_paid_native_total", { chain: "local", outcome: "settled" })).to.be.greaterThan(0);
    expect(total(m, "agentgpt_settler_settlement_seconds_count", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_settler_settlement_seconds_sum", { chain: "local" })).to.be.greaterThan(0.1);
    expect(total(m, "agentgpt_settler_receipts_pending", { chain: "local" })).to.equal(0);
    expect(total(m, "agentgpt_settler_batches_open", { chain: "local" })).to.equal(0);
    expect(total(m, "agentgpt_settler_signer_balance_native", { chain: "local" })).to.equal(nativeOf(await suite.provider.getBalance(signer)));
    expect(total(m, "agentgpt_rpc_breaker_state", { chain: "local", stage: "settler" })).to.equal(0);
  });

  it("counts a stuck transaction rebroadcast unchanged (resubmit, as on Arbitrum)", async function () {
    const { p, scrape } = build({ stuckAfterMs: 100, replacement: "resubmit" });
    await p.batcher.take(someReceipts(4, "resubmit"));
    await node.rpc("evm_setAutomine", [false]);
    await p.batcher.tick(Date.now() + 1);
    await settleAll(p, async () => ((await p.store.active())[0]?.state ?? "") === "sent");
    await new Promise((r) => setTimeout(r, 150));
    await p.settler.pass();
    const m = await scrape();
    expect(total(m, "agentgpt_settler_transactions_stuck_total", { chain: "local" })).to.equal(1);
    expect(total(m, "agentgpt_settler_transactions_replaced_total", { chain: "local", mode: "rebroadcast" })).to.equal(1);
    expect(total(m, "agentgpt_settler_transactions_replaced_total", { chain: "local", mode: "bump" })).to.equal(0);
    await node.rpc("evm_setAutomine", [true]);
    await node.rpc("evm_mine", []);
    await settleAll(p, async () => (await p.store.active()).length === 0);
    await p.settler.lease.release();
    expect(total(await scrape(), "agentgpt_settler_batches_final_total", { chain: "local" })).to.equal(1);
  });
});
