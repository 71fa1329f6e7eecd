/**
 * The settler under faults, in this process, against a real `hardhat node` and Redis. Each case ends with the same
 * assertion: the chain charged every payer exactly what its receipts priced, once.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Transaction, Wallet } from "ethers";
import type { Redis } from "ioredis";

import type { Receipt } from "../../../relayer/queue/index.js";
import type { SettlerOptions } from "../../../relayer/settler/settler.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, settleAll } from "../../helpers/pipeline.js";
import { expectedCharges, receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { startFaultProxy } from "../../helpers/rpc-fault-proxy.js";

describe("relayer settler: faults", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;
  let initial: Map<string, bigint>;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  beforeEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
    suite = await deployChainSuite(node.url);
    prefix = uniquePrefix();
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-archive-"));
    initial = new Map();
    for (const payer of suite.payers) initial.set(payer.address.toLowerCase(), await suite.router.balanceOf(payer.address));
  });
  afterEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  function build(rpcUrls: string[], overrides: Partial<SettlerOptions> = {}) {
    const p = pipeline({
      suite,
      rpcUrls,
      redis,
      prefix,
      archiveDir,
      rpc: { timeoutMs: 1000, deadlineMs: 20_000, breaker: { threshold: 2, cooldownMs: 500 } },
      settler: overrides,
      maxReceipts: 1000,
    });
    return { ...p, p };
  }

  function someReceipts(count: number): Receipt[] {
    return Array.from({ length: count }, (_, i) =>
      receipt(suite.payers[i % suite.payers.length]!.address, i % 2 ? "openai" : "groq", i % 2 ? "gpt-4-turbo" : "mixtral-8x22b", 100 + i * 37),
    );
  }

  async function expectExactTotals(receipts: readonly Receipt[]) {
    const expected = expectedCharges(receipts);
    for (const payer of suite.payers) {
      const key = payer.address.toLowerCase();
      const charged = initial.get(key)! - (await suite.router.balanceOf(payer.address));
      expect(charged, key).to.equal(expected.byPayer.get(key) ?? 0n);
    }
    const total = [...expected.byPayer.values()].reduce((a, b) => a + b, 0n);
    expect(await suite.router.totalEscrow()).to.equal(total);
  }

  it("replaces a transaction that stays unmined with the same nonce and fees raised by at least 10%", async function () {
    const { batcher, store, p } = build([node.url], { stuckAfterMs: 100 });
    const receipts = someReceipts(12);
    await batcher.take(receipts);
    await node.rpc("evm_setAutomine", [false]);
    await batcher.tick(Date.now() + 1);
    await settleAll(p, async () => ((await store.active())[0]?.state ?? "") === "sent");
    await new Promise((r) => setTimeout(r, 150));
    await p.settler.pass(); // stuck: replaced
    const [record] = await store.active();
    expect(record!.txs.length).to.equal(2);
    const [first, second] = record!.txs.map((tx) => Transaction.from(tx.raw));
    expect(second!.nonce).to.equal(first!.nonce);
    expect(second!.maxFeePerGas! * 100n >= first!.maxFeePerGas! * 110n).to.equal(true);
    expect(second!.maxPriorityFeePerGas! * 100n >= first!.maxPriorityFeePerGas! * 110n).to.equal(true);
    await node.rpc("evm_mine", []);
    await node.rpc("evm_setAutomine", [true]);
    await settleAll(p, async () => (await store.active()).length === 0);
    const final = (await store.get(record!.batchId))!;
    expect(final.txHash).to.equal(record!.txs[1]!.hash); // the replacement won
    await expectExactTotals(receipts);
  });

  it("reopens a batch whose block was reorged away, and settles it once", async function () {
    const { batcher, store, p } = build([node.url], { confirmations: 3 });
    const receipts = someReceipts(9);
    await batcher.take(receipts);
    const snapshot = await node.rpc<string>("evm_snapshot", []);
    await batcher.tick(Date.now() + 1);
    await settleAll(p, async () => ((await store.active())[0]?.state ?? "") === "mined");
    const mined = (await store.active())[0]!;
    await node.rpc("evm_revert", [snapshot]); // the settlement block is gone
    for (let i = 0; i < 4; i++) await node.rpc("evm_mine", []);
    await settleAll(p, async () => {
      const [r] = await store.active();
      if (r === undefined) return true;
      if (r.state === "mined") await node.rpc("evm_mine", []);
      return false;
    });
    const final = (await store.get(mined.batchId))!;
    expect(final.state).to.equal("final");
    expect(final.blockHash).to.not.equal(mined.blockHash);
    await expectExactTotals(receipts);
  });

  it("fails over across RPC endpoints that error, time out or drop the connection", async function () {
    const broken = await startFaultProxy(node.url);
    const flaky = await startFaultProxy(node.url, 7);
    try {
      broken.fail("timeout");
      flaky.flaky(0.3);
      const { batcher, store, rpc, p } = build([broken.url, flaky.url, node.url]);
      const receipts = someReceipts(15);
      await batcher.take(receipts);
      await batcher.tick(Date.now() + 1);
      await settleAll(p, async () => (await store.active()).length === 0);
      await expectExactTotals(receipts);
      expect(broken.stats.faulted).to.be.greaterThan(0);
      expect(rpc.health()[0]!.state).to.not.equal("closed");
      broken.fail("drop");
      flaky.fail("error");
      const more = someReceipts(5);
      await batcher.take(more);
      await batcher.tick(Date.now() + 1);
      await settleAll(p, async () => (await store.active()).length === 0);
      await expectExactTotals([...receipts, ...more]);
    } finally {
      await broken.close();
      await flaky.close();
    }
  });

  it("recognises a batch already settled on-chain (crash between send and record) and never resends it", async function () {
    const { batcher, store, p } = build([node.url]);
    const receipts = someReceipts(6);
    await batcher.take(receipts);
    await batcher.tick(Date.now() + 1);
    await settleAll(p, async () => ((await store.active())[0]?.state ?? "") === "sent");
    const [sent] = await store.active();
    // the ledger forgets it sent anything (as if the process died before recording the broadcast)
    await store.update(sent!.batchId, { state: "queued", nonce: null, txs: [] });
    await store.setNextNonce(new Wallet(suite.relayerKey).address, 0);
    await settleAll(p, async () => (await store.active()).length === 0);
    const final = (await store.get(sent!.batchId))!;
    expect(final.txHash).to.equal(sent!.txs[0]!.hash);
    await expectExactTotals(receipts);
  });

  it("sends a batch back to the queue when another transaction consumed its nonce", async function () {
    const { batcher, store, p } = build([node.url], { stuckAfterMs: 60_000 });
    const receipts = someReceipts(4);
    await batcher.take(receipts);
    await node.rpc("evm_setAutomine", [false]);
    await batcher.tick(Date.now() + 1);
    await settleAll(p, async () => ((await store.active())[0]?.state ?? "") === "sent");
    const [sent] = await store.active();
    // someone else uses the relayer key with the same nonce and a higher fee
    await node.rpc("hardhat_dropTransaction", [sent!.txs[0]!.hash]);
    const relayer = new Wallet(suite.relayerKey, suite.provider);
    await relayer.sendTransaction({ to: relayer.address, value: 0n, nonce: sent!.nonce!, maxFeePerGas: 10n ** 12n, maxPriorityFeePerGas: 10n ** 10n });
    await node.rpc("evm_mine", []);
    await node.rpc("evm_setAutomine", [true]);
    await settleAll(p, async () => (await store.active()).length === 0);
    const final = (await store.get(sent!.batchId))!;
    expect(final.nonce).to.equal(sent!.nonce! + 1);
    await expectExactTotals(receipts);
  });
});
