/**
 * Chaos run (`npm run chaos`; a script, not a CI step: it takes a few minutes). 50,000 LiteLLM calls through the
 * real relayer process into a local `hardhat node`, with:
 *   - every body sent twice (LiteLLM retrying after a missed reply),
 *   - the relayer SIGKILLed at three random moments (and started again),
 *   - 10 % of the relayer's RPC calls failing (errors, timeouts, dropped connections, through a loopback proxy),
 *   - Redis (AOF on, fsync always) killed and restarted once.
 * Then a second phase, LiteLLM's own faults: CHAOS_DROP_CALLS (10,000) more calls, every one written to LiteLLM's spend
 * log table in a real PostgreSQL (as LiteLLM's proxy does), posted once in bodies of which 10 % are dropped by the
 * sender (LiteLLM's logger drops a batch after any failure and never sends it again), and 2 % of them logged twice
 * with jitter (another endTime, float noise in response_cost); then `agentgpt litellm backfill` reads the spend
 * records and queues what never arrived.
 * One payer has no funds, so its rows are rejected on-chain with a reason. At the end it prints receipts accepted,
 * settled, rejected with their reasons, lost and double-charged, checked against chain state: each payer's
 * on-chain charge must equal the price of its settled calls, and every call must be in exactly one final batch.
 * Exits non-zero when anything is lost or double-charged.
 *
 * Options (environment): CHAOS_RECEIPTS (50000), CHAOS_BODY (500), CHAOS_SEED (1), CHAOS_RPC_FAILURE (0.1),
 * CHAOS_DROP_CALLS (10000), CHAOS_DROP_BODY (100), CHAOS_DROP_RATE (0.1), CHAOS_TWICE_RATE (0.02). PostgreSQL: PGTEST_URL (see
 * test/helpers/postgres.ts).
 * Writes bench/results/chaos.json.
 *
 * `npm run chaos -- --fleet` runs the fleet chaos instead (three relayer processes on a Redis Cluster): bench/chaos-fleet.ts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Table from "cli-table3";
import { Wallet } from "ethers";
import { Redis } from "ioredis";

import { runFleetChaos } from "./chaos-fleet.js";
import { prng } from "./workload.js";
import { LocalArchive } from "../relayer/batcher/local-archive.js";
import { receiptsOutsideBucket } from "../relayer/batcher/batch-file.js";
import { freePort, startHardhatNode } from "../test/helpers/hardhat-node.js";
import { startAofRedis } from "../test/helpers/redis.js";
import { startRelayerEnvironment, type RelayerEnvironment } from "../test/helpers/relayer-environment.js";
import { postSpend } from "../test/helpers/relayer-process.js";
import { startFaultProxy } from "../test/helpers/rpc-fault-proxy.js";
import { chargesByPayer, spendLog, type SpendLog } from "../test/helpers/spend-logs.js";
import { createTestDatabase } from "../test/helpers/postgres.js";
import { LiteLLMDatabase } from "../test/relayer/backfill/litellm-db.js";

if (process.argv.includes("--fleet")) process.exit(await runFleetChaos());

const RECEIPTS = Number(process.env.CHAOS_RECEIPTS ?? 50_000);
const BODY = Number(process.env.CHAOS_BODY ?? 500);
const SEED = Number(process.env.CHAOS_SEED ?? 1);
const RPC_FAILURE = Number(process.env.CHAOS_RPC_FAILURE ?? 0.1);
const DROP_CALLS = Number(process.env.CHAOS_DROP_CALLS ?? 10_000);
const DROP_RATE = Number(process.env.CHAOS_DROP_RATE ?? 0.1);
const TWICE_RATE = Number(process.env.CHAOS_TWICE_RATE ?? 0.02);
const DROP_BODY = Number(process.env.CHAOS_DROP_BODY ?? 100); // LiteLLM flushes smaller batches than 512 at lower rates
const PAYERS = 10; // payer 9 has no funds: its rows are rejected on-chain
const DEPOSIT = 10_000_000n * 10n ** 18n;
const random = prng(SEED);
const log = (line: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---- a Redis of our own, AOF on, that we can kill
const redisPort = await freePort();
const redisDir = mkdtempSync(join(tmpdir(), "agentgpt-chaos-redis-"));
const startRedis = () => startAofRedis(redisPort, redisDir);
let redisServer: ChildProcess = await startRedis();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
redis.on("error", () => undefined);

const node = await startHardhatNode();
const proxy = await startFaultProxy(node.url, SEED);
const litellmDb = await createTestDatabase("chaos");
const litellm = await LiteLLMDatabase.create(litellmDb.url);
let env: RelayerEnvironment | undefined;
let exitCode = 1;

try {
  env = await startRelayerEnvironment({
    node,
    redis,
    redisUrl,
    prefix: "chaos",
    payers: PAYERS,
    deposit: DEPOSIT,
    config: { rpcUrls: [proxy.url], maxReceipts: 3000, maxWait: "1s", stuckAfter: "5s" },
  });
  const { suite, setup, store } = env;
  // payer 9: take its deposit back, so its rows cannot be paid
  const broke = suite.payers[PAYERS - 1]!;
  await (await suite.admin.sendTransaction({ to: broke.address, value: 10n ** 18n })).wait();
  await (await suite.router.connect(new Wallet(broke.privateKey, suite.provider)).withdraw(DEPOSIT)).wait();

  proxy.flaky(RPC_FAILURE);
  let relayer = await env.spawn();

  const logs: SpendLog[] = Array.from({ length: RECEIPTS }, (_, i) =>
    spendLog(Math.floor(random() * PAYERS), random() < 0.3 ? "mixtral-8x22b" : "gpt-4-turbo", 20 + Math.floor(random() * 4000), `chaos-${SEED}`),
  );
  const bodies = Math.ceil(RECEIPTS / BODY);
  const kills = new Set<number>();
  while (kills.size < 3) kills.add(1 + Math.floor(random() * (bodies - 2)));
  const redisRestart = 1 + Math.floor(random() * (bodies - 2));
  log(`${RECEIPTS} calls in ${bodies} bodies, each sent twice; SIGKILL before bodies ${[...kills].sort((a, b) => a - b).join(", ")}; Redis restart before body ${redisRestart}; ${RPC_FAILURE * 100}% of RPC calls failing`);

  let refused = 0;
  const sendUntilAccepted = async (entries: unknown[]) => {
    for (let attempt = 0; ; attempt++) {
      const response = await postSpend(setup.url, entries).catch(() => ({ status: 0, body: null }));
      if (response.status === 200) return;
      refused++;
      if (attempt > 600) throw new Error(`body never accepted: ${response.status} ${JSON.stringify(response.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  for (let b = 0; b < bodies; b++) {
    if (kills.has(b)) {
      log(`SIGKILL the relayer (pid ${relayer.child.pid})`);
      relayer.child.kill("SIGKILL");
      await relayer.exited;
      relayer = await env.spawn();
      log("relayer started again");
    }
    if (b === redisRestart) {
      log("kill -9 Redis, then start it again");
      redisServer.kill("SIGKILL");
      await once(redisServer, "exit");
      redisServer = await startRedis();
    }
    const entries = logs.slice(b * BODY, (b + 1) * BODY).map((l) => l.entry);
    await sendUntilAccepted(entries);
    await sendUntilAccepted(entries); // the same body again
    if (b % 20 === 0) log(`${Math.min((b + 1) * BODY, RECEIPTS)} calls sent (twice)`);
  }

  // ---- phase 2: LiteLLM drops 10 % of its POSTs and logs 2 % of calls twice; the backfill recovers from its records
  // three hours ago: a backfill reads no further back than the dedupe records reach (ingest.dedupe_ttl)
  const BASE = Math.floor(Date.now() / 1000) - 3 * 3600 + 0.412311;
  const dropLogs: SpendLog[] = Array.from({ length: DROP_CALLS }, (_, i) => {
    const l = spendLog(Math.floor(random() * PAYERS), random() < 0.3 ? "mixtral-8x22b" : "gpt-4-turbo", 20 + Math.floor(random() * 4000), `chaos-${SEED}-litellm`);
    const start = BASE + 60 + i * 0.013;
    Object.assign(l.entry, { startTime: start, endTime: start + 0.5 + random() * 3 });
    return l;
  });
  await litellm.writeSpendLog(dropLogs.map((l) => l.entry)); // LiteLLM writes every call to its database
  const jittered = (entry: Record<string, unknown>) => ({
    ...structuredClone(entry),
    endTime: Number(entry["endTime"]) + (1 + Math.floor(random() * 20)) / 1000,
    response_cost: Number(entry["response_cost"]) * (1 + Number.EPSILON * (1 + Math.floor(random() * 4))),
  });
  /** exactly `count` of `items`, chosen at random */
  const pick = <T>(items: readonly T[], count: number): T[] => {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, count);
  };
  const stream: Array<Record<string, unknown>> = dropLogs.map((l) => l.entry);
  const again = pick(dropLogs, Math.round(TWICE_RATE * dropLogs.length));
  const loggedTwice = again.length;
  for (const l of again) {
    // logged again a moment later: in the same batch or one of the next three
    const at = Math.min(stream.length, stream.indexOf(l.entry) + 1 + Math.floor(random() * 3 * DROP_BODY));
    stream.splice(at, 0, jittered(l.entry));
  }
  let postsDropped = 0;
  let callsInDroppedPosts = 0;
  const dropBodies = Math.ceil(stream.length / DROP_BODY);
  const dropped = new Set(pick([...Array(dropBodies).keys()], Math.round(DROP_RATE * dropBodies)));
  for (let b = 0; b < dropBodies; b++) {
    const entries = stream.slice(b * DROP_BODY, (b + 1) * DROP_BODY);
    if (dropped.has(b)) {
      postsDropped++;
      callsInDroppedPosts += entries.length;
      continue; // the sender dropped this POST (as LiteLLM does after a failure): it is never sent again
    }
    const response = await postSpend(setup.url, entries);
    if (response.status !== 200) throw new Error(`phase 2 body ${b}: ${response.status} ${JSON.stringify(response.body)}`);
  }
  log(`phase 2: ${DROP_CALLS} calls in ${dropBodies} POSTs, ${postsDropped} POSTs (${callsInDroppedPosts} logs) dropped by the sender, ${loggedTwice} calls logged twice; running the backfill`);
  const backfillRun = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["bin/agentgpt.mjs", "litellm", "backfill", "--config", setup.configFile, "--since", new Date((Math.floor(BASE) - 3600) * 1000).toISOString(), "--until", new Date((Math.floor(BASE) + 3600) * 1000).toISOString(), "--json"],
      { env: { ...process.env, LITELLM_DATABASE_URL: litellmDb.url }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
  if (backfillRun.code !== 0) throw new Error(`agentgpt litellm backfill failed (${backfillRun.code}): ${backfillRun.stderr}`);
  const backfill = JSON.parse(backfillRun.stdout) as { read: number; recovered: number; alreadyReceived: number; conflicts: number; unbillable: number };
  log(`backfill: ${backfill.read} records read, ${backfill.recovered} recovered, ${backfill.alreadyReceived} already received, ${backfill.conflicts} conflicts`);
  logs.push(...dropLogs);

  log("waiting for every call to be settled");
  const stats = await env.settled(logs.length, { timeoutMs: 600_000, pollMs: 500 });

  // ---- check against chain state and the archive
  const archive = new LocalArchive(setup.archiveDir);
  const batchesOf = new Map<string, number>();
  let outsideBucket = 0;
  let wrongInterval = 0;
  const refusedBatches = (await store.refusedIds()).length;
  const rejectedIds = new Set<string>();
  const rejectedByReason: Record<string, number> = {};
  for (const batchId of await store.finalIds()) {
    const record = (await store.get(batchId))!;
    const file = (await archive.read("local", batchId))!;
    // one usage bucket per batch, committed on-chain as the file says
    outsideBucket += receiptsOutsideBucket(file.receipts.map((r) => r.receipt), file.callsFrom, file.usageBucket).length;
    if (record.outcome!.callsFrom !== file.callsFrom) wrongInterval++;
    const rejectedRows = new Map(record.outcome!.rejected);
    for (const { rowIndex, receipt } of file.receipts) {
      const id = receipt.id;
      batchesOf.set(id, (batchesOf.get(id) ?? 0) + 1);
      const reason = rejectedRows.get(rowIndex);
      if (reason !== undefined) {
        rejectedIds.add(id);
        rejectedByReason[reason] = (rejectedByReason[reason] ?? 0) + 1;
      }
    }
  }
  const lost = logs.filter((l) => !batchesOf.has(String(l.entry.id))).length;
  const lostFromDroppedPosts = dropLogs.filter((l) => !batchesOf.has(String(l.entry.id))).length;
  const phase2DoubleCharged = dropLogs.filter((l) => (batchesOf.get(String(l.entry.id)) ?? 0) > 1).length;
  const inTwoBatches = [...batchesOf.values()].filter((n) => n > 1).length;
  const settledLogs = logs.filter((l) => !rejectedIds.has(String(l.entry.id)));
  const expected = chargesByPayer(settledLogs);
  let mismatches = 0;
  for (const [i, payer] of suite.payers.entries()) {
    const start = i === PAYERS - 1 ? 0n : DEPOSIT;
    const charged = start - (await suite.router.balanceOf(payer.address));
    if (charged !== (expected.get(i) ?? 0n)) {
      mismatches++;
      log(`payer ${i}: charged ${charged}, expected ${expected.get(i) ?? 0n}`);
    }
  }
  const doubleCharged = inTwoBatches + (mismatches > 0 ? 1 : 0);
  const results = {
    receipts: RECEIPTS + DROP_CALLS,
    bodiesSentTwice: bodies,
    relayerKills: kills.size,
    redisRestarts: 1,
    rpcFailureRate: RPC_FAILURE,
    rpcFaults: proxy.stats.faulted,
    postsRefusedWhileDown: refused,
    accepted: batchesOf.size,
    settled: stats.receipts_settled ?? 0,
    rejected: stats.receipts_rejected ?? 0,
    rejectedByReason,
    batches: stats.batches_final ?? 0,
    lost,
    doubleCharged,
    payerChargeMismatches: mismatches,
    receiptsOutsideBucket: outsideBucket,
    batchesWithWrongInterval: wrongInterval,
    refusedBatches,
    litellmFaults: {
      calls: DROP_CALLS,
      posts: dropBodies,
      postsDroppedBySender: postsDropped,
      logsInDroppedPosts: callsInDroppedPosts,
      callsLoggedTwice: loggedTwice,
      backfill: { read: backfill.read, recovered: backfill.recovered, alreadyReceived: backfill.alreadyReceived, conflicts: backfill.conflicts },
      lostAfterBackfill: lostFromDroppedPosts,
      doubleCharged: phase2DoubleCharged,
    },
    measuredAt: new Date().toISOString(),
  };
  const table = new Table({ head: ["accepted", "settled", "rejected (reason)", "batches", "RPC faults", "lost", "double-charged"] });
  table.push([
    results.accepted,
    results.settled,
    `${results.rejected} (${Object.entries(rejectedByReason).map(([r, n]) => `${r}: ${n}`).join(", ") || "-"})`,
    results.batches,
    results.rpcFaults,
    results.lost,
    results.doubleCharged,
  ]);
  process.stdout.write(`\n${table.toString()}\n`);
  const out = join(dirname(fileURLToPath(import.meta.url)), "results", "chaos.json");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`receipts outside their batch's usage bucket: ${outsideBucket}; batches settled with another interval: ${wrongInterval}; batches refused (receipts root reused): ${refusedBatches}\n`);
  exitCode = lost === 0 && doubleCharged === 0 && outsideBucket === 0 && wrongInterval === 0 && refusedBatches === 0 ? 0 : 1;
  process.stdout.write(exitCode === 0 ? "nothing lost, nothing double-charged, every batch in one usage bucket\n" : "FAILED: calls lost or double-charged, or a batch outside its usage bucket\n");
} finally {
  await env?.close();
  await proxy.close();
  await node.stop();
  await litellm.close();
  await litellmDb.drop();
  redis.disconnect();
  redisServer.kill("SIGKILL");
  rmSync(redisDir, { recursive: true, force: true });
}
process.exit(exitCode);
