/**
 * Fleet chaos run (`npm run chaos -- --fleet`; a script, not a CI step). The relayer as a fleet of three processes
 * with different stages on a real local Redis Cluster (three masters with a replica each, Debian's redis-server,
 * test/helpers/redis-cluster.ts) and a `hardhat node` on 127.0.0.1:
 *   P1 = ingest,batcher   P2 = ingest,settler,reconciler   P3 = batcher,settler,reconciler (the standby)
 * CHAOS_RECEIPTS (50,000) LiteLLM calls in LiteLLM-shaped bodies, alternately to the two ingest processes, every body
 * sent twice (LiteLLM retrying after a missed reply; the copy goes to the other ingest process, as a load balancer
 * may send it). Along the way, between bodies:
 *   - SIGKILL an ingest process in the middle of a POST to it (5 to 125 ms after it was sent), then the batcher lease holder, the settler lease holder and the reconciler lease
 *     holder (each found by the pid in its lease), wait until a standby holds the lease (takeover time measured),
 *     and start the killed process again with the same stages;
 *   - CLUSTER FAILOVER of the master holding the settler's ledger while traffic runs (CHAOS_KILL_MASTER=1: SIGKILL a
 *     master instead, then the cluster promotes its replica; acknowledged writes not yet replicated may be lost: that
 *     is Redis's asynchronous replication, not the relayer).
 * A body refused (a process down) is sent again to the other ingest process until accepted.
 * Then it waits until every call is settled and checks against the chain: every call in exactly one final batch
 * (0 lost, 0 in two batches), each payer's on-chain charge equals the price of its settled calls, nothing left in the
 * batcher's pool. Prints a table and writes bench/results/chaos-fleet.json; exits non-zero on any loss or double
 * charge.
 *
 * Options (environment): CHAOS_RECEIPTS (50000), CHAOS_BODY (500), CHAOS_SEED (1), CHAOS_SETTLE_TIMEOUT_S (1200),
 * CHAOS_KILL_MASTER (0).
 */
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Table from "cli-table3";
import type { Redis } from "ioredis";

import { prng } from "./workload.js";
import { LocalArchive } from "../relayer/batcher/local-archive.js";
import { asRedis, createRedis } from "../relayer/queue/index.js";
import { RedisDisputeLedger } from "../relayer/reconciler/dispute-ledger.js";
import { freePort } from "../test/helpers/hardhat-node.js";
import { startRedisCluster } from "../test/helpers/redis-cluster.js";
import { startRelayerEnvironment, type RelayerEnvironment } from "../test/helpers/relayer-environment.js";
import { postSpend, type RelayerProcess } from "../test/helpers/relayer-process.js";
import { chargesByPayer, spendLog, type SpendLog } from "../test/helpers/spend-logs.js";

const RECEIPTS = Number(process.env.CHAOS_RECEIPTS ?? 50_000);
const BODY = Number(process.env.CHAOS_BODY ?? 500);
const SEED = Number(process.env.CHAOS_SEED ?? 1);
const SETTLE_TIMEOUT_MS = Number(process.env.CHAOS_SETTLE_TIMEOUT_S ?? 1200) * 1000;
const KILL_MASTER = process.env.CHAOS_KILL_MASTER === "1";
const PAYERS = 8;
const DEPOSIT = 10_000_000n * 10n ** 18n;
const PREFIX = "chaosfleet";
const CHAIN = "local";

type Role = "ingest" | "batcher" | "settler" | "reconciler";

interface Member {
  readonly name: string;
  readonly stages: string;
  /** the ingest URL of this process, when it serves ingest */
  readonly url: string | null;
  readonly args: string[];
  process: RelayerProcess;
}

interface Kill {
  stage: Role;
  process: string;
  pid: number;
  beforeBody: number;
  /** ms from SIGKILL until another process held the stage's lease (null for ingest) */
  takeoverMs: number | null;
  takenOverBy: string | null;
}

const log = (line: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runFleetChaos(): Promise<number> {
  const random = prng(SEED);
  const started = Date.now();
  log(`starting a Redis Cluster (3 masters + 3 replicas) and a hardhat node`);
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  const redis: Redis = asRedis(createRedis(cluster.url, { maxRetriesPerRequest: null }));
  redis.on("error", () => undefined);
  const members: Member[] = [];
  // every process's full log, kept after the run (a failure is reproduced from these)
  const logDir = mkdtempSync(join(tmpdir(), "agentgpt-chaos-fleet-logs-"));
  const keepLogs = (m: Member) => appendFileSync(join(logDir, `${m.name}.log`), `--- pid ${m.process.child.pid} (${m.stages}) ---\n${m.process.logs()}`);
  let env: RelayerEnvironment | undefined;
  let exitCode = 1;
  try {
    const fleet = await startRelayerEnvironment({
      redis,
      redisUrl: cluster.url,
      prefix: PREFIX,
      payers: PAYERS,
      deposit: DEPOSIT,
      config: { maxReceipts: 3000, maxWait: "1s", stuckAfter: "5s" },
      // a reconciler section, so the reconciler runs (under its lease) in P2 and P3; no usage APIs: it compares nothing
      configExtra: "reconciler:\n  interval: 2s\n  report_delay: 1s\n",
    });
    env = fleet;
    const { suite, setup, store } = fleet;
    const secondPort = await freePort();
    const plan: Array<Omit<Member, "process">> = [
      { name: "P1", stages: "ingest,batcher", url: setup.url, args: [] },
      { name: "P2", stages: "ingest,settler,reconciler", url: `http://127.0.0.1:${secondPort}`, args: ["--port", String(secondPort)] },
      { name: "P3", stages: "batcher,settler,reconciler", url: null, args: [] },
    ];
    const start = (m: Omit<Member, "process">) => fleet.spawn({ stages: m.stages, args: m.args });
    for (const m of plan) {
      members.push({ ...m, process: await start(m) });
      log(`${m.name} (${m.stages}) started, pid ${members.at(-1)!.process.child.pid}`);
      await sleep(300); // P1/P2 take the leases first, P3 stands by
    }
    const ingests = members.filter((m) => m.url !== null);

    const leaseKeys: Record<Exclude<Role, "ingest">, string> = {
      batcher: `{${PREFIX}:batcher:${CHAIN}}:lease`,
      settler: store.key("lease"),
      reconciler: new RedisDisputeLedger(redis, PREFIX, CHAIN).leaseKey,
    };
    const holderPid = async (role: Exclude<Role, "ingest">): Promise<number | null> => {
      const owner = await redis.get(leaseKeys[role]).catch(() => null);
      return owner === null ? null : Number(owner.split(":")[0]);
    };
    const memberOf = (pid: number | null) => members.find((m) => m.process.child.pid === pid);

    const logs: SpendLog[] = Array.from({ length: RECEIPTS }, () =>
      spendLog(Math.floor(random() * PAYERS), random() < 0.3 ? "mixtral-8x22b" : "gpt-4-turbo", 20 + Math.floor(random() * 4000), `fleet-${SEED}`),
    );
    const bodies = Math.ceil(RECEIPTS / BODY);
    // events at distinct bodies in the first 80 % of the traffic, in order: ingest, batcher, settler, reconciler, failover
    const at = new Set<number>();
    while (at.size < 5) at.add(1 + Math.floor(random() * Math.max(5, Math.floor(bodies * 0.8) - 1)));
    const [ingestKill, batcherKill, settlerKill, reconcilerKill, failoverAt] = [...at].sort((a, b) => a - b) as [number, number, number, number, number];
    const killAt = new Map<number, Role>([
      [ingestKill, "ingest"],
      [batcherKill, "batcher"],
      [settlerKill, "settler"],
      [reconcilerKill, "reconciler"],
    ]);
    log(
      `${RECEIPTS} calls in ${bodies} bodies of ${BODY}, each sent twice (to both ingest processes); SIGKILL before bodies ` +
        `${[...killAt].map(([b, role]) => `${b} (${role})`).join(", ")}; ${KILL_MASTER ? "kill a Redis master" : "Redis failover"} before body ${failoverAt}`,
    );

    const kills: Kill[] = [];
    /**
     * SIGKILLs the process serving `role` (an ingest process: `victim`, in the middle of a POST of `entries` to it),
     * waits until a standby holds the stage's lease, and starts the killed process again with the same stages.
     */
    const killOne = async (role: Role, beforeBody: number, inFlight?: { victim: Member; entries: unknown[] }) => {
      let victim: Member | undefined = inFlight?.victim;
      if (role !== "ingest") {
        const deadline = Date.now() + 30_000;
        while ((victim = memberOf(await holderPid(role))) === undefined) {
          if (Date.now() > deadline) throw new Error(`nobody holds the ${role} lease`);
          await sleep(100);
        }
      }
      const pid = victim!.process.child.pid!;
      let post: Promise<unknown> = Promise.resolve();
      let delay = 0;
      if (inFlight !== undefined) {
        // the body is on its way (parsed, staged, written to some shards...) when the process dies
        post = postSpend(victim!.url!, inFlight.entries).then((r) => r.status, () => "connection lost");
        delay = 5 + Math.floor(random() * 120);
        await sleep(delay);
      }
      log(`SIGKILL ${victim!.name} (${victim!.stages}, pid ${pid}): the ${role === "ingest" ? `ingest process, ${delay} ms into a POST` : `${role} lease holder`}`);
      victim!.process.child.kill("SIGKILL");
      const killedAt = Date.now();
      await victim!.process.exited;
      if (inFlight !== undefined) log(`the POST in flight ended with: ${String(await post)}`);
      const kill: Kill = { stage: role, process: victim!.name, pid, beforeBody, takeoverMs: null, takenOverBy: null };
      if (role !== "ingest") {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const holder = memberOf(await holderPid(role));
          if (holder !== undefined && holder.process.child.pid !== pid) {
            kill.takeoverMs = Date.now() - killedAt;
            kill.takenOverBy = holder.name;
            break;
          }
          if (Date.now() > deadline) throw new Error(`no standby took the ${role} lease over in 60 s`);
          await sleep(50);
        }
        log(`${kill.takenOverBy} took the ${role} lease over ${kill.takeoverMs} ms after the SIGKILL`);
      }
      kills.push(kill);
      keepLogs(victim!);
      victim!.process = await start(victim!);
      log(`${victim!.name} started again, pid ${victim!.process.child.pid}`);
    };

    let failover: Promise<unknown> | null = null;
    let failoverResult = null as { from: number; to: number; killed: boolean } | null;
    const failMaster = async () => {
      const slot = Number(await redis.cluster("KEYSLOT", leaseKeys.settler));
      const slots = await redis.cluster("SLOTS");
      const owner = Number(slots.find(([from, to]) => slot >= from && slot <= to)![2]![1]);
      if (KILL_MASTER) {
        log(`SIGKILL the Redis master on ${owner} (slot ${slot} of the settler's ledger)`);
        cluster.kill(owner);
        failoverResult = { from: owner, to: 0, killed: true };
        return;
      }
      log(`CLUSTER FAILOVER of the master on ${owner} (slot ${slot} of the settler's ledger), during traffic`);
      const result = await cluster.failover(owner);
      failoverResult = { ...result, killed: false };
      log(`Redis failover done: ${result.from} -> ${result.to}`);
    };

    let refused = 0;
    const sendUntilAccepted = async (first: number, entries: unknown[]) => {
      for (let attempt = 0; ; attempt++) {
        const target = ingests[(first + attempt) % ingests.length]!; // refused: the load balancer tries the other one
        const response = await postSpend(target.url!, entries).catch(() => ({ status: 0, body: null }));
        if (response.status === 200) return;
        refused++;
        if (attempt > 600) throw new Error(`body never accepted: ${response.status} ${JSON.stringify(response.body)}`);
        await sleep(100);
      }
    };

    const sendStarted = Date.now();
    for (let b = 0; b < bodies; b++) {
      const role = killAt.get(b);
      const entries = logs.slice(b * BODY, (b + 1) * BODY).map((l) => l.entry);
      // the ingest process is killed while this body is in flight to it; LiteLLM then sends it again (below)
      if (role === "ingest") await killOne(role, b, { victim: ingests[b % ingests.length]!, entries });
      else if (role !== undefined) await killOne(role, b);
      if (b === failoverAt) failover = failMaster();
      await sendUntilAccepted(b, entries);
      await sendUntilAccepted(b + 1, entries); // the same body again, to the other ingest process
      if (b % 10 === 0) log(`${Math.min((b + 1) * BODY, RECEIPTS)} calls sent (twice)`);
    }
    await failover;
    const sendSeconds = (Date.now() - sendStarted) / 1000;

    log("waiting for every call to be settled");
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    let stats: Record<string, number> = {};
    let lastLog = 0;
    for (;;) {
      stats = await store.stats().catch(() => stats);
      const active = await redis.zcard(store.key("active")).catch(() => -1);
      const done = (stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0);
      if (done >= logs.length && active === 0) break;
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        log(`${done} of ${logs.length} settled or rejected, ${active} batches active`);
      }
      if (Date.now() > deadline) {
        log(`not settled after ${SETTLE_TIMEOUT_MS / 1000} s: ${JSON.stringify(stats)}, ${active} active`);
        break;
      }
      await sleep(1000);
    }
    // ---- check against the chain and the shared archive
    const archive = new LocalArchive(setup.archiveDir);
    const scan = async () => {
      const batchesOf = new Map<string, number>();
      const rejectedIds = new Set<string>();
      for (const batchId of await store.finalIds()) {
        const record = (await store.get(batchId))!;
        const file = await archive.read(CHAIN, batchId);
        if (file === null) throw new Error(`final batch ${batchId} is not in the shared archive`);
        const rejectedRows = new Map(record.outcome!.rejected);
        for (const { rowIndex, receipt } of file.receipts) {
          batchesOf.set(receipt.id, (batchesOf.get(receipt.id) ?? 0) + 1);
          if (rejectedRows.has(rowIndex)) rejectedIds.add(receipt.id);
        }
      }
      return { batchesOf, rejectedIds, lostIds: logs.filter((l) => !batchesOf.has(String(l.entry.id))).map((l) => String(l.entry.id)) };
    };
    // the counters said done: the final batches must hold every call (if not, the counters ran ahead: look again for 2 min)
    let { batchesOf, rejectedIds, lostIds } = await scan();
    const recheckUntil = Date.now() + 120_000;
    while (lostIds.length > 0 && Date.now() < recheckUntil) {
      await sleep(2000);
      ({ batchesOf, rejectedIds, lostIds } = await scan());
    }
    const settleSeconds = (Date.now() - sendStarted) / 1000 - sendSeconds;
    stats = await store.stats();
    const inTwoBatches = [...batchesOf.values()].filter((n) => n > 1).length;
    const expected = chargesByPayer(logs.filter((l) => !rejectedIds.has(String(l.entry.id))));
    let mismatches = 0;
    let charged = 0n;
    for (const [i, payer] of suite.payers.entries()) {
      const paid = DEPOSIT - (await suite.router.balanceOf(payer.address));
      charged += paid;
      if (paid !== (expected.get(i) ?? 0n)) {
        mismatches++;
        log(`payer ${i}: charged ${paid}, expected ${expected.get(i) ?? 0n}`);
      }
    }
    const batcherTag = `{${PREFIX}:batcher:${CHAIN}}`;
    const leftInPool = (await redis.hlen(`${batcherTag}:pool`)) + (await redis.zcard(`${batcherTag}:order`));
    const unhanded = await redis.scard(`${batcherTag}:unhanded`);
    const doubleCharged = inTwoBatches + (mismatches > 0 ? 1 : 0);
    // the ledger's counters must agree with the final batches (a batch finalized twice counts its receipts twice)
    const statsOvercount = (stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0) - batchesOf.size;
    const results = {
      receipts: RECEIPTS,
      body: BODY,
      bodiesSentTwice: bodies,
      processes: plan.map((m) => ({ name: m.name, stages: m.stages })),
      kills,
      redis: { masters: 3, replicasPerMaster: 1, failover: failoverResult, beforeBody: failoverAt },
      postsRefusedWhileDown: refused,
      accepted: batchesOf.size,
      settled: stats.receipts_settled ?? 0,
      rejected: stats.receipts_rejected ?? 0,
      batches: stats.batches_final ?? 0,
      lost: lostIds.length,
      lostSample: lostIds.slice(0, 10),
      doubleCharged,
      receiptsInTwoBatches: inTwoBatches,
      payerChargeMismatches: mismatches,
      chargedOnChain: charged.toString(),
      statsOvercount,
      leftInBatcherPool: leftInPool,
      batchesNotHandedToSettler: unhanded,
      sendSeconds,
      settleSeconds,
      totalSeconds: (Date.now() - started) / 1000,
      measuredAt: new Date().toISOString(),
    };
    const table = new Table({ head: ["accepted", "settled", "rejected", "batches", "kills (takeover ms)", "Redis", "lost", "double-charged"] });
    table.push([
      results.accepted,
      results.settled,
      results.rejected,
      results.batches,
      kills.map((k) => `${k.stage}:${k.process}${k.takeoverMs === null ? "" : ` (${k.takeoverMs})`}`).join("\n"),
      failoverResult === null ? "-" : `${failoverResult.killed ? "master killed" : "failover"} ${failoverResult.from}`,
      results.lost,
      results.doubleCharged,
    ]);
    process.stdout.write(`\n${table.toString()}\n`);
    const out = join(dirname(fileURLToPath(import.meta.url)), "results", "chaos-fleet.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    const ok = lostIds.length === 0 && doubleCharged === 0 && leftInPool === 0 && unhanded === 0 && results.rejected === 0 && statsOvercount === 0;
    process.stdout.write(
      ok
        ? `nothing lost, nothing double-charged, every receipt settled (${results.totalSeconds.toFixed(0)} s)\n`
        : `FAILED: ${lostIds.length} lost, ${doubleCharged} double-charged, ${leftInPool} left in the batcher's pool, ${unhanded} batches not handed over, ${results.rejected} rejected, settled counter ${statsOvercount} above the final batches\n`,
    );
    exitCode = ok ? 0 : 1;
  } finally {
    for (const m of members) {
      await m.process.stop();
      keepLogs(m);
    }
    log(`the processes' logs: ${logDir}`);
    await env?.close();
    redis.disconnect();
    await cluster.stop();
  }
  return exitCode;
}
