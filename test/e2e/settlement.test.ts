/**
 * End to end: the real relayer process (`agentgpt relayer start`) between LiteLLM-style POSTs and a `hardhat node`
 * over JSON-RPC, with a real Redis. Every case ends with the same assertion: the chain charged each payer exactly
 * what its calls cost, once, however the run was disturbed (re-sent bodies, SIGKILL at three points, Redis
 * restarted, a failing RPC endpoint, a stuck transaction, a reorg).
 */
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet } from "ethers";

import { LocalArchive } from "../../relayer/batcher/local-archive.js";
import { freePort, startHardhatNode, type HardhatNode } from "../helpers/hardhat-node.js";
import { dropPrefix, startAofRedis } from "../helpers/redis.js";
import { startRelayerEnvironment, type RelayerEnvironment, type RelayerEnvironmentOptions } from "../helpers/relayer-environment.js";
import { postSpend, type RelayerProcess } from "../helpers/relayer-process.js";
import { startFaultProxy } from "../helpers/rpc-fault-proxy.js";
import { chargesByPayer, spendLog, type SpendLog } from "../helpers/spend-logs.js";

describe("e2e: relayer process, LiteLLM logs in, exact on-chain totals out", function () {
  this.timeout(240_000);
  let node: HardhatNode;
  let environment: RelayerEnvironment | undefined;
  let relayer: RelayerProcess;
  let initial: bigint[];

  before(async function () {
    node = await startHardhatNode();
  });
  after(async function () {
    await node?.stop();
  });
  beforeEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") environment?.printLogs(6000);
    await environment?.close();
    environment = undefined;
    await node.rpc("evm_setAutomine", [true]);
  });

  /** A fresh deployment on the node, a prefix and a config (with `config`'s overrides) for this test. */
  async function configure(config: RelayerEnvironmentOptions["config"] = {}, redisUrl?: string): Promise<RelayerEnvironment> {
    const env = await startRelayerEnvironment({ node, label: "e2e", payers: 4, redisUrl, config });
    environment = env;
    env.redis.on("error", () => undefined); // a restarted Redis is part of one test; ioredis reconnects by itself
    initial = await env.balances();
    return env;
  }

  function calls(count: number, runId: string): SpendLog[] {
    return Array.from({ length: count }, (_, i) =>
      spendLog(i % environment!.suite.payers.length, i % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 50 + ((i * 7919) % 4000), runId),
    );
  }

  async function send(logs: readonly SpendLog[], perBody: number, times = 1) {
    for (let i = 0; i < logs.length; i += perBody) {
      const body = logs.slice(i, i + perBody).map((log) => log.entry);
      for (let t = 0; t < times; t++) {
        // Like LiteLLM's retrying logger: a 503 (Redis not reachable yet) means "not acknowledged, send again".
        let response = await postSpend(environment!.setup.url, body);
        for (let retry = 0; response.status === 503 && retry < 100; retry++) {
          await new Promise((r) => setTimeout(r, 100));
          response = await postSpend(environment!.setup.url, body);
        }
        expect(response.status, JSON.stringify(response.body)).to.equal(200);
      }
    }
  }

  /** Waits until every call is in a final batch (the settler's counters) and nothing is pending. */
  const settled = (count: number) => environment!.settled(count);

  async function expectExactTotals(logs: readonly SpendLog[]) {
    const { suite, store } = environment!;
    const expected = chargesByPayer(logs);
    let total = 0n;
    for (const [i, payer] of suite.payers.entries()) {
      const charged = initial[i]! - (await suite.router.balanceOf(payer.address));
      expect(charged, `payer ${i}`).to.equal(expected.get(i) ?? 0n);
      total += charged;
    }
    expect(await suite.router.totalEscrow()).to.equal(total);
    const stats = await store.stats();
    expect(stats.receipts_settled).to.equal(logs.length); // each call settled once, never twice
  }

  it("settles every call once when LiteLLM sends every body twice", async function () {
    const env = await configure();
    const { prefix } = env;
    relayer = await env.spawn();
    const logs = calls(120, prefix);
    await send(logs, 40, 2);
    await settled(logs.length);
    await expectExactTotals(logs);
  });

  it("settles calls of several usage buckets sent together as batches of one bucket each, a late call in its own old bucket", async function () {
    const env = await configure();
    const { setup, suite, prefix, store } = env;
    relayer = await env.spawn();
    const now = Math.floor(Date.now() / 1000);
    const current = now - (now % 3600);
    const buckets = [current - 3 * 3600, current - 3600, current]; // a backfill of three hours ago, the last hour, now
    const at = (bucket: number, i: number) => bucket + Math.min((i * 617) % 3600, now - bucket) + 0.25; // the current bucket: not after now (+0.25 s)
    const logs = Array.from({ length: 60 }, (_, i) =>
      spendLog(i % suite.payers.length, i % 2 === 0 ? "gpt-4-turbo" : "mixtral-8x22b", 100 + i * 13, prefix, { startTime: at(buckets[i % 3]!, i) }),
    );
    await send(logs, 60); // one POST: the pool holds the three buckets together
    await settled(logs.length);
    const late = spendLog(0, "gpt-4-turbo", 777, prefix, { startTime: buckets[0]! + 59.5 });
    await send([late], 1);
    await settled(logs.length + 1);
    await expectExactTotals([...logs, late]);

    const archive = new LocalArchive(setup.archiveDir);
    const byBucket = new Map<number, number>();
    let lateBatch: string | null = null;
    for (const batchId of await store.finalIds()) {
      const file = (await archive.read("local", batchId))!;
      const info = await suite.router.batchInfo(batchId);
      expect(info.callsFrom, batchId).to.equal(BigInt(file.callsFrom));
      for (const { receipt } of file.receipts) {
        expect(Math.floor(receipt.startTime / 1000) - (Math.floor(receipt.startTime / 1000) % 3600), receipt.id).to.equal(file.callsFrom);
        if (receipt.litellmCallId === late.entry.litellm_call_id) lateBatch = batchId;
      }
      byBucket.set(file.callsFrom, (byBucket.get(file.callsFrom) ?? 0) + file.receipts.length);
    }
    expect(Object.fromEntries(byBucket)).to.deep.equal({ [buckets[0]!]: 21, [buckets[1]!]: 20, [buckets[2]!]: 20 });
    expect((await suite.router.batchInfo(lateBatch!)).callsFrom).to.equal(BigInt(buckets[0]!));
  });

  for (const point of ["after-archive", "after-send", "during-confirm"] as const) {
    it(`recovers from SIGKILL ${point.replace("-", " ")}`, async function () {
      const env = await configure();
      const { prefix } = env;
      relayer = await env.spawn({ env: { AGENTGPT_FAILPOINT: point } });
      const logs = calls(60, prefix);
      await send(logs.slice(0, 30), 30);
      const code = await Promise.race([relayer.exited, new Promise((r) => setTimeout(() => r("alive"), 30_000))]);
      expect(code, "the failpoint killed the process").to.not.equal("alive");
      expect(relayer.child.signalCode).to.equal("SIGKILL");
      relayer = await env.spawn();
      await send(logs.slice(30), 30);
      await send(logs.slice(0, 30), 30); // LiteLLM retries the body whose reply it may have missed
      await settled(logs.length);
      await expectExactTotals(logs);
    });
  }

  it("survives a Redis restart (AOF on) without losing or repeating a call", async function () {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "agentgpt-redis-"));
    const startRedis = () => startAofRedis(port, dir);
    let server = await startRedis();
    try {
      const env = await configure({}, `redis://127.0.0.1:${port}`);
      const { prefix, redis } = env;
      relayer = await env.spawn();
      const logs = calls(80, prefix);
      await send(logs.slice(0, 40), 20);
      server.kill("SIGKILL"); // a crash: only what AOF has survives
      await once(server, "exit");
      server = await startRedis();
      await send(logs.slice(40), 20);
      await send(logs.slice(0, 40), 20);
      await settled(logs.length);
      await expectExactTotals(logs);
      await relayer.stop();
      await dropPrefix(redis, prefix);
    } finally {
      environment?.redis.disconnect(); // before its server goes: closing the environment then finds it closed
      server.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("settles through an RPC endpoint that errors, times out and drops connections", async function () {
    const proxy = await startFaultProxy(node.url, 11);
    try {
      proxy.flaky(0.25);
      const env = await configure({ rpcUrls: [proxy.url, node.url] });
      const { prefix } = env;
      relayer = await env.spawn();
      const logs = calls(60, prefix);
      await send(logs, 20);
      proxy.fail("drop");
      await settled(logs.length);
      await expectExactTotals(logs);
      expect(proxy.stats.faulted).to.be.greaterThan(0);
    } finally {
      await proxy.close();
    }
  });

  it("replaces a transaction that stays unmined, and it is mined once", async function () {
    const env = await configure({ stuckAfter: "1s" });
    const { prefix, store } = env;
    relayer = await env.spawn();
    await node.rpc("evm_setAutomine", [false]);
    const logs = calls(30, prefix);
    await send(logs, 30);
    for (let i = 0; ; i++) {
      const [record] = await store.active();
      if (record !== undefined && record.txs.length >= 2) break;
      if (i > 150) throw new Error("no replacement was sent");
      await new Promise((r) => setTimeout(r, 100));
    }
    await node.rpc("evm_setAutomine", [true]);
    await node.rpc("evm_mine", []);
    await settled(logs.length);
    await expectExactTotals(logs);
  });

  it("settles once across a reorg (evm_snapshot / evm_revert)", async function () {
    const env = await configure({ confirmations: 4 });
    const { suite, prefix, redis, store } = env;
    const snapshot = await node.rpc<string>("evm_snapshot", []);
    relayer = await env.spawn();
    const logs = calls(30, prefix);
    await send(logs, 30);
    for (let i = 0; ; i++) {
      const [record] = await store.active();
      if (record?.state === "mined") break;
      if (i > 150) throw new Error("never mined");
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await suite.router.totalEscrow()).to.be.greaterThan(0n);
    await node.rpc("evm_revert", [snapshot]); // the batch's block (and the contracts' later state) is gone...
    // ...but the contracts were deployed before the snapshot, so the chain is consistent again.
    for (let i = 0; i < 200 && (await redis.zcard(store.key("active"))) > 0; i++) {
      await node.rpc("evm_mine", []);
      await new Promise((r) => setTimeout(r, 100));
    }
    await settled(logs.length);
    await expectExactTotals(logs);
  });
});
