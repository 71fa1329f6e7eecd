/**
 * `agentgpt demo`: the whole billing flow on a local chain, in under a minute, with nothing left behind.
 *
 *  1. redis     REDIS_URL, 127.0.0.1:6379, or a private redis-server
 *  2. chain     a `hardhat node` on a free loopback port (or --rpc, a development node)
 *  3. deploy    the suite (AGPT, AutoPayLLM, timelock + governor, UsageOracle on the mock Functions router), the
 *               timelock then holding every admin power
 *  4. payers    five API keys' wallets funded by deposit (one too small for its calls)
 *  5. relayer   ingest, batcher, settler (with its release stage) and reconciler in this process, from a generated
 *               configuration
 *  6. traffic   LiteLLM spend logs (built from LiteLLM's own payload examples) POSTed over HTTP as LiteLLM's generic
 *               API logger does, one body twice
 *  7. settle    the batch settles on-chain (escrowed for the dispute window), committing its calls' usage bucket
 *  8. honest    one payer disputes an honest interval (all its settled rows of one provider, model and bucket): the
 *               UsageOracle asks the provider's usage API through Chainlink Functions (the mock router and the Node
 *               simulator as the DON), finds nothing overbilled, and the payer's bond goes to the provider
 *  9. overbill  the first batches are released after their window by the relayer's release stage (the honest bill
 *               stays paid); LiteLLM logs the
 *               research-agents' openai/gpt-4-turbo calls of that bucket a second time under new ids, the relayer
 *               settles them in a SECOND batch of the same payer, provider, model and bucket; the reconciler sees the
 *               interval billed beyond the provider's report and disputes it with that payer's key (naming the rows
 *               of both batches); the oracle refunds exactly the second bill, to the token unit, bond returned
 * 10. release   past the dispute window the release stage releases the rest; each provider's payee withdraws with
 *               the code of `agentgpt provider withdraw` (relayer/payout PayoutClient)
 * 11. monitor   the seed's cost table and the payouts (escrowed, releasable, released, withdrawn) (relayer/monitor)
 * Then the money is checked to the unit: solvency, every payer charged exactly its accepted rows less its refund
 * and lost bond, every provider paid exactly its released rows less refunds plus bonds won. Everything started is stopped and every file and Redis key removed,
 * on success, on failure and on Ctrl-C.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Wallet, encodeBytes32String, parseEther, type JsonRpcSigner } from "ethers";
import { Redis } from "ioredis";
import { pino, type Logger } from "pino";

import { LocalArchive } from "../batcher/local-archive.js";
import type { BatchFile } from "../batcher/batch-file.js";
import { AGPT_UNIT, DEPLOYMENTS_DIR_VARIABLE, advanceLocalChain, connectSuite, loadDeployment } from "../chain/index.js";
import { formatTokenAmount, loadRelayerConfig } from "../config/index.js";
import { DisputeClient, disputeIdOf, openDisputeChain } from "../disputes/index.js";
import { startIngest } from "../ingest/index.js";
import { deleteKeysWithPrefix } from "../queue/index.js";
import { MonitorCollector, buildReport, renderReport } from "../monitor/index.js";
import { PayoutClient } from "../payout/index.js";
import { startReconciler } from "../reconciler/index.js";
import { startSettlement } from "../settler/runtime.js";
import { SettlementStore, type SettlementRecord } from "../settler/settlement-store.js";
import { REPO_ROOT } from "./build.js";
import { Cleanup } from "./cleanup.js";
import { DEMO_KEY_ENV, DEMO_PAYER_KEY_ENV, DEMO_USAGE_KEY_ENV, writeDemoConfig } from "./demo-config.js";
import { deploySuite, writeDeployment, type DeployedSuite } from "./deploy-suite.js";
import { checkResolution, pollUntil, type CheckedDispute } from "./dispute-check.js";
import { DemoError } from "./errors.js";
import { freePort, startHardhatNode, useExistingChain, type LocalChain } from "./local-chain.js";
import { LocalDon } from "./local-don.js";
import { demoRedis } from "./local-redis.js";
import { DEMO_MODELS, demoTraffic, type DemoCall, sampleEnd } from "./traffic.js";
import { DemoUsageServer } from "./usage-server.js";

const AGPT = 10n ** 18n;
const STEPS = 11;
const DISPUTE_WINDOW = 60;
const BOND = AGPT / 2n;
const USAGE_API_KEY = randomBytes(16).toString("hex");

/** The demo's API keys (LiteLLM key aliases), what each deposits for 600 calls, and who disputes. */
const KEYS = [
  { alias: "prod-backend", deposit: 400n * AGPT },
  { alias: "research-agents", deposit: 250n * AGPT },
  { alias: "support-bot", deposit: 120n * AGPT },
  { alias: "partner-gateway", deposit: 150n * AGPT },
  // deposits too little for its calls: its rows are rejected (InsufficientFunds), nothing is charged
  { alias: "batch-jobs", deposit: AGPT / 100n, short: true },
] as const;
const DISPUTER = "research-agents";
/** disputes an honest interval of its own (and loses its bond) */
const HONEST_DISPUTER = "support-bot";
const DEFAULT_CALLS = 600;

/** A key's deposit for `calls` calls: scaled with the traffic, except the one meant to fall short. */
function depositFor(key: (typeof KEYS)[number], calls: number): bigint {
  if ("short" in key || calls <= DEFAULT_CALLS) return key.deposit;
  const whole = BigInt(DEFAULT_CALLS) * AGPT;
  return ((key.deposit * BigInt(calls) + whole - 1n) / whole) * AGPT; // rounded up to a whole AGPT
}

export interface DemoOptions {
  /** an existing development node instead of starting one */
  readonly rpc?: string | undefined;
  /** LiteLLM calls to replay (default 600) */
  readonly calls?: number | undefined;
  readonly out?: NodeJS.WritableStream | undefined;
  /** print a JSON summary as the last line */
  readonly json?: boolean | undefined;
}

export interface DemoSummary extends DemoMoney {
  readonly chainId: number;
  readonly router: string;
  /** the AGPT token */
  readonly token: string;
  readonly calls: number;
  readonly queued: number;
  readonly unbillable: number;
  readonly duplicates: number;
  /** every batch settled: the traffic's, then the second bill of step 9 */
  readonly batches: number;
  readonly rows: number;
  readonly rejectedRows: number;
  /** token units (decimal text) charged into escrow by the accepted rows of every batch */
  readonly escrowed: string;
  /** the overcharge planted in a second batch and refunded, then the honest interval whose dispute lost its bond */
  readonly disputes: { readonly overcharge: DemoDispute; readonly honest: DemoDispute };
  readonly checks: string[];
  readonly timings: Record<string, number>;
  readonly totalMs: number;
  readonly tempDir: string;
  readonly redisPrefix: string;
  readonly nodeUrl: string;
}

/** A dispute of the demo as resolved on-chain (token units and tokens as decimal text). */
export interface DemoDispute {
  readonly disputeId: string;
  /** the payer's key alias */
  readonly payer: string;
  readonly provider: string;
  readonly model: string;
  readonly callsFrom: number;
  readonly callsTo: number;
  readonly rows: number;
  readonly billedTokens: string;
  readonly reportedTokens: string;
  readonly heldTokens: string;
  readonly heldAmount: string;
  readonly overbilledTokens: string;
  readonly refund: string;
  readonly toProvider: string;
  readonly bond: string;
  readonly bondReturned: boolean;
  /** overcharge only: the second batch's bill of the interval (what the refund must equal) */
  readonly plantedTokens?: string;
  readonly plantedAmount?: string;
}

/** Where the money ended, read from the chain after the providers withdrew (token units as decimal text). */
export interface DemoMoney {
  /** by key alias: deposit before the traffic, deposit now, and their difference */
  readonly payers: Record<string, { readonly address: string; readonly deposited: string; readonly balance: string; readonly charged: string }>;
  /** by provider name: what its payee withdrew */
  readonly providers: Record<string, { readonly payee: string; readonly withdrawn: string }>;
  /** AGPT the router holds, what it owes (deposits, escrow, credits, bonds), and what is still escrowed */
  readonly routerBalance: string;
  readonly liabilities: string;
  readonly escrowLeft: string;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const out = options.out ?? process.stdout;
  const say = (line: string) => void out.write(`${line}\n`);
  const started = Date.now();
  const timings: Record<string, number> = {};
  const cleanup = new Cleanup();
  let stepNo = 0;
  let logFile = "";
  // Ctrl-C aborts what is in flight (HTTP POSTs, waits) before the cleanup stops what runs
  const abort = new AbortController();
  /** One numbered step: its title, then its outcome and time; `block` (a table) is printed after them. */
  const step = async <T>(name: string, title: string, body: () => Promise<{ value: T; detail: string; block?: string }>): Promise<T> => {
    if (abort.signal.aborted) throw new DemoError("interrupted", 130);
    stepNo += 1;
    const at = Date.now();
    say(`[${String(stepNo).padStart(2)}/${STEPS}] ${title} ...`);
    const { value, detail, block } = await body();
    timings[name] = Date.now() - at;
    say(`        ${detail} (${((Date.now() - at) / 1000).toFixed(1)} s)`);
    if (block !== undefined) say(block);
    return value;
  };

  const interrupted = (signal: NodeJS.Signals) => {
    say(`\n${signal}: stopping and cleaning up ...`);
    abort.abort();
    void cleanup.runAll().then((failed) => {
      say(failed.length === 0 ? "cleaned up" : `cleaned up, except: ${failed.join("; ")}`);
      process.exit(130);
    });
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const previousDeployments = process.env[DEPLOYMENTS_DIR_VARIABLE];

  try {
    say("agentgpt demo: LiteLLM usage in, ERC-20 settlement out, on a local chain (Ctrl-C stops it and cleans up)");
    const dir = await mkdtemp(join(tmpdir(), "agentgpt-demo-"));
    cleanup.watchDir(dir);
    cleanup.add("temporary files", () => rm(dir, { recursive: true, force: true }));
    logFile = join(dir, "relayer.log");
    say(`working in ${dir} (relayer log: relayer.log; removed at the end)`);

    // 1. redis
    const prefix = `agentgpt-demo-${randomBytes(4).toString("hex")}`;
    const redisInfo = await step("redis", "connecting to Redis", async () => {
      const notes: string[] = [];
      const value = await demoRedis(process.env, dir, (note) => notes.push(note), (child) => cleanup.watchChild(child));
      cleanup.add("private redis-server", () => value.stop());
      return { value, detail: `${value.label}, demo keys under "${prefix}"${notes.length > 0 ? `; ${notes.join("; ")}` : ""}` };
    });
    const redis = new Redis(redisInfo.url, { maxRetriesPerRequest: 2 });
    redis.on("error", () => undefined);
    cleanup.add("Redis keys", async () => {
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
    });

    // 2. chain
    const chain: LocalChain = await step("chain", options.rpc === undefined ? "starting a local chain (hardhat node)" : "connecting to the chain", async () => {
      const value = options.rpc === undefined ? await startHardhatNode((child) => cleanup.watchChild(child)) : await useExistingChain(options.rpc);
      cleanup.add("chain", () => value.stop());
      return { value, detail: `${value.child === null ? "using" : "started"} ${value.url} (chain ${value.connection.chainId})` };
    });
    const provider = chain.connection.provider;
    const deployer: JsonRpcSigner = await provider.getSigner(0);

    // 3. deploy
    const usage = await new DemoUsageServer(USAGE_API_KEY).start();
    cleanup.add("usage API", () => usage.stop());
    const relayerKey = new Wallet(Wallet.createRandom().privateKey);
    const payees = new Map(DEMO_MODELS.map((m) => [m.provider, new Wallet(Wallet.createRandom().privateKey, provider)]));
    const suite: DeployedSuite = await step("deploy", "deploying the suite", async () => {
      const source = await readFile(join(REPO_ROOT, "oracle", "functions", "provider-usage.js"), "utf8");
      const value = await deploySuite(deployer, {
        supply: 100_000_000n * AGPT,
        disputeWindow: DISPUTE_WINDOW,
        timelockDelay: 120,
        votingDelay: 0,
        votingPeriod: 10,
        proposalThreshold: 1000n * AGPT,
        quorumPercent: 4,
        providers: DEMO_MODELS.map((m) => ({ name: m.provider, payee: payees.get(m.provider)!.address })),
        models: [
          { name: "gpt-4-turbo", pricePer1k: (12n * AGPT) / 100n },
          { name: "claude-3-opus", pricePer1k: (9n * AGPT) / 100n },
          { name: "mixtral-8x22b", pricePer1k: (85n * AGPT) / 10_000n },
        ],
        relayer: relayerKey.address,
        disputeBond: BOND,
        oracle: { usageApiUrl: usage.url, source, subscriptionId: 1n, donId: encodeBytes32String("fun-local-demo") },
        handOver: true,
      });
      const deployments = join(dir, "deployments");
      await writeDeployment(deployments, chain.connection.chainId, value);
      process.env[DEPLOYMENTS_DIR_VARIABLE] = deployments; // this process only; the repository's deployments are untouched
      await (await deployer.sendTransaction({ to: relayerKey.address, value: parseEther("10") })).wait();
      for (const payee of payees.values()) await (await deployer.sendTransaction({ to: payee.address, value: parseEther("1") })).wait();
      return {
        value,
        detail:
          `AutoPayLLM ${value.addresses.autoPayLLM}, UsageOracle ${value.addresses.usageOracle} (arbiter), ${value.providerIds.size} providers, 3 priced models, ` +
          `dispute window ${DISPUTE_WINDOW} s; admin handed to the timelock ${value.addresses.timelock} (${value.transactions} transactions)`,
      };
    });
    const routerAddress = suite.addresses.autoPayLLM;

    // 4. payers
    const count = options.calls ?? DEFAULT_CALLS;
    const payers = new Map<string, Wallet>(KEYS.map((key) => [key.alias, new Wallet(Wallet.createRandom().privateKey, provider)]));
    const initial = await step("payers", "funding the demo payers", async () => {
      const total = KEYS.reduce((sum, key) => sum + depositFor(key, count), 0n);
      await (await suite.agpt.connect(deployer).approve(routerAddress, total)).wait();
      for (const key of KEYS) await (await suite.router.connect(deployer).depositFor(payers.get(key.alias)!.address, depositFor(key, count))).wait();
      for (const alias of [DISPUTER, HONEST_DISPUTER]) await (await deployer.sendTransaction({ to: payers.get(alias)!.address, value: parseEther("1") })).wait();
      const value = new Map<string, bigint>();
      for (const [alias, wallet] of payers) value.set(alias, await suite.router.balanceOf(wallet.address));
      return { value, detail: `deposits: ${KEYS.map((key) => `${key.alias} ${formatTokenAmount(depositFor(key, count), AGPT_UNIT)}`).join(", ")}` };
    });

    // the LiteLLM sample (what the providers served, too: their usage API reports it)
    const trafficEnd = sampleEnd(Math.floor(Date.now() / 1000), Number(await suite.router.usageBucket()));
    const calls: DemoCall[] = demoTraffic({ count, keyAliases: KEYS.map((key) => key.alias), now: trafficEnd });
    for (const call of calls) if (call.ok) usage.record(call.model.provider, call.model.model, payers.get(call.keyAlias)!.address, call.tokens, startOf(call));
    const disputer = payers.get(DISPUTER)!;

    // 5. relayer
    const ingestToken = randomBytes(24).toString("hex");
    const config = await step("relayer", "starting the relayer (ingest, batcher, settler with its release stage, reconciler)", async () => {
      const written = await writeDemoConfig({
        dir,
        redisUrl: redisInfo.url,
        prefix,
        rpcUrl: chain.url,
        chainId: chain.connection.chainId,
        router: routerAddress,
        port: await freePort(),
        ingestToken,
        payers: KEYS.map((key) => ({ keyAlias: key.alias, address: payers.get(key.alias)!.address })),
        batchReceipts: calls.filter((call) => call.ok).length,
        usageApiUrl: usage.url,
        providers: DEMO_MODELS.map((m) => m.provider),
        disputer: disputer.address,
      });
      const value = loadRelayerConfig(written.file);
      const logger: Logger = pino({ level: "info", base: { service: "agentgpt-demo" } }, pino.destination({ dest: logFile, sync: true }));
      const ingest = await startIngest(value, { logger: logger.child({ stage: "ingest" }), defaultMetrics: false });
      cleanup.add("relayer ingest", () => ingest.stop());
      const settlement = await startSettlement(value, { logger: logger.child({ stage: "settlement" }), env: { [DEMO_KEY_ENV]: relayerKey.privateKey } });
      cleanup.add("relayer settlement", () => settlement.stop());
      const reconciler = await startReconciler(value, {
        logger: logger.child({ stage: "reconciler" }),
        env: { [DEMO_USAGE_KEY_ENV]: USAGE_API_KEY, [DEMO_PAYER_KEY_ENV]: disputer.privateKey },
      });
      cleanup.add("relayer reconciler", () => reconciler.stop());
      return {
        value: { config: value, ingestUrl: ingest.url, archiveDir: written.archiveDir },
        detail:
          `ingest ${ingest.url}/litellm/spend; settler signs as ${relayerKey.address}; ` +
          `reconciler asks the providers' usage API ${usage.url} and holds the key of ${DISPUTER}; logs in the temporary directory`,
      };
    });

    // 6. traffic
    const postBodies = async (bodies: readonly (readonly DemoCall[])[]) => {
      const totals = { bodies: 0, queued: 0, unbillable: 0, duplicates: 0 };
      for (const body of bodies) {
        const response = await fetch(`${config.ingestUrl}/litellm/spend`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${ingestToken}` },
          body: JSON.stringify(body.map((call) => call.entry)),
          signal: abort.signal,
        });
        const reply = (await response.json()) as { queued?: number; unbillable?: number; duplicates?: number; reason?: string };
        if (response.status !== 200) throw new DemoError(`ingest answered HTTP ${response.status}: ${reply.reason ?? JSON.stringify(reply)}`);
        totals.bodies += 1;
        totals.queued += reply.queued ?? 0;
        totals.unbillable += reply.unbillable ?? 0;
        totals.duplicates += reply.duplicates ?? 0;
      }
      return totals;
    };
    const posted = await step("traffic", `replaying ${count} LiteLLM calls over HTTP (generic API logger POSTs)`, async () => {
      const bodies: DemoCall[][] = [];
      for (let i = 0; i < calls.length; i += 256) bodies.push(calls.slice(i, i + 256));
      // LiteLLM re-sends the first body (its reply was lost): every call in it is a duplicate the second time
      const totals = await postBodies([...bodies, bodies[0]!]);
      return {
        value: totals,
        detail: `${totals.bodies} POSTs: ${totals.queued} priced and queued, ${totals.unbillable} kept as unbillable (failed calls), ${totals.duplicates} duplicates (the re-sent body) ignored`,
      };
    });

    // 7. settle
    const store = new SettlementStore(redis, prefix, "local");
    const archive = new LocalArchive(config.archiveDir);
    /** Waits until `queued` receipts in all are settled or rejected and no batch is in flight; the final records. */
    const settledRecords = async (queued: number): Promise<SettlementRecord[]> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const stats = await store.stats();
        if ((stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0) >= queued && (await store.active()).length === 0) break;
        if (abort.signal.aborted) throw new DemoError("interrupted", 130);
        if (Date.now() > deadline) throw new DemoError(`the relayer did not settle the ${queued} receipts within 60 s (${JSON.stringify(stats)})`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const records: SettlementRecord[] = [];
      for (const batchId of await store.finalIds()) records.push((await store.get(batchId))!);
      return records;
    };
    const settled = await step("settle", "batching and settling on-chain", async () => {
      const records = await settledRecords(posted.queued);
      const files = new Map<string, BatchFile>();
      for (const record of records) files.set(record.batchId, (await archive.read("local", record.batchId))!);
      const rows = records.reduce((sum, r) => sum + r.rows, 0);
      const rejected = records.flatMap((r) => r.outcome!.rejected.map(([index, reason]) => ({ batchId: r.batchId, index, reason, row: files.get(r.batchId)!.rows[index]! })));
      const escrowed = records.reduce((sum, r) => sum + BigInt(r.outcome!.escrowed), 0n);
      const lines = records.map((r) => `batch ${r.batchId.slice(0, 12)}… in block ${r.block} (tx ${r.txHash!.slice(0, 12)}…, ${r.gasUsed} gas): ${r.rows} rows, ${r.receipts} receipts, CID ${r.cid}`);
      const rejectedText = rejected.length === 0 ? "no row rejected" : `${rejected.length} rows rejected (${[...new Set(rejected.map((r) => `${r.row.providerName}/${r.row.modelName} of ${aliasOf(payers, r.row.user)}: ${r.reason}`))].join("; ")})`;
      return {
        value: { records, files, rejected, escrowed },
        detail: `${lines.join("\n        ")}\n        ${rows} rows, ${formatTokenAmount(escrowed, AGPT_UNIT)} escrowed for ${DISPUTE_WINDOW} s; ${rejectedText}`,
      };
    });

    const disputeChain = await openDisputeChain(provider, { autoPayLLM: routerAddress, usageOracle: suite.addresses.usageOracle });
    const client = new DisputeClient(disputeChain, { sources: { archive, archiveChain: "local" }, store, pollMs: 200 });
    const don = new LocalDon(suite.functionsRouter!, deployer, { usageApiKey: USAGE_API_KEY });
    const poll = { provider, don, signal: abort.signal, timeoutMs: 40_000 };
    /** Waits until the relayer's release stage (beside the settler) has released every batch of `batchIds`. */
    const releasedByStage = (batchIds: readonly string[]) =>
      pollUntil({ ...poll, timeoutMs: 20_000, what: `the release stage's release of ${batchIds.length} batch(es) past their window` }, async () => {
        const states = await Promise.all(batchIds.map(async (batchId) => Number((await suite.router.batchInfo(batchId)).status)));
        return states.every((state) => state === 2) ? true : null;
      });

    // 8. an honest interval disputed: nothing overbilled, the bond goes to the provider
    const honest = await step("honest", `${HONEST_DISPUTER} disputes an honest interval (every settled row of it)`, async () => {
      const wallet = payers.get(HONEST_DISPUTER)!;
      const row = findRow(settled.records, settled.files, wallet.address);
      if (row === null) throw new DemoError(`no accepted row of ${HONEST_DISPUTER} in the settled batches: nothing for it to dispute`);
      const key = await client.intervalOfRow(row);
      const prepared = await client.prepare(key, wallet.address);
      const opened = await client.open(prepared, wallet, { reason: "demo: an honest bill disputed" });
      await pollUntil({ ...poll, what: `the oracle's answer to the dispute of ${HONEST_DISPUTER}` }, async () =>
        Number((await suite.router.disputeInfo(opened.disputeId)).status) >= 2 ? true : null,
      );
      const checked = await checkResolution(client, usage, opened.disputeId);
      if (checked.status.overbilledTokens !== 0n || checked.bondReturned) {
        throw new DemoError(`the honest interval of ${HONEST_DISPUTER} was found ${checked.status.overbilledTokens} tokens overbilled: the provider's usage API and the bill disagree`);
      }
      return {
        value: demoDispute(checked, HONEST_DISPUTER),
        detail:
          `${HONEST_DISPUTER} on ${checked.providerName}/${checked.modelName}, calls from ${isoSeconds(key.callsFrom)}: ${checked.status.rows} row(s) named, ` +
          `${checked.status.billedTokens} tokens billed, ${formatTokenAmount(checked.status.heldAmount, AGPT_UNIT)} held; dispute ${opened.disputeId.slice(0, 12)}… (bond ${formatTokenAmount(opened.bond, AGPT_UNIT)})\n` +
          `        the local DON ran the Functions source against the usage API: ${checked.reported} tokens reported = billed: nothing overbilled; ` +
          `${formatTokenAmount(checked.toProvider, AGPT_UNIT)} to the provider, the bond paid to the provider (tx ${checked.txHash.slice(0, 12)}…)`,
      };
    });

    // 9. an overcharge planted in a second batch of the same payer, provider, model and bucket: refunded exactly
    const overcharge = await step("overbill", "the same calls billed twice: the reconciler disputes the interval, the oracle refunds the second bill", async () => {
      const row = findRow(settled.records, settled.files, disputer.address, "openai", "gpt-4-turbo");
      if (row === null) {
        throw new DemoError(`no accepted openai/gpt-4-turbo row of ${DISPUTER} in the settled batches (see the rejected rows above): nothing to bill twice`);
      }
      const key = await client.intervalOfRow(row);
      const bucket = Number(await suite.router.usageBucket());
      // the honest bill: past its window the relayer's release stage releases it to the providers; it stays paid
      await advanceLocalChain(provider, { seconds: DISPUTE_WINDOW + 1 });
      await releasedByStage(settled.records.map((r) => r.batchId));
      // LiteLLM logs the same calls again under new ids: the relayer bills them a second time
      const twice = calls.filter(
        (c) => c.ok && c.keyAlias === DISPUTER && c.model.provider === "openai" && c.model.model === "gpt-4-turbo" && startOf(c) >= key.callsFrom && startOf(c) < key.callsFrom + bucket,
      );
      const replayed = await postBodies([twice.map(relogged)]);
      if (replayed.queued !== twice.length) throw new DemoError(`ingest queued ${replayed.queued} of the ${twice.length} re-logged calls`);
      const records = await settledRecords(posted.queued + replayed.queued);
      const firstIds = new Set(settled.records.map((r) => r.batchId));
      const newRecords = records.filter((r) => !firstIds.has(r.batchId));
      for (const record of newRecords) settled.files.set(record.batchId, (await archive.read("local", record.batchId))!);
      settled.records.push(...newRecords);
      // the reconciler finds the interval billed beyond the provider's report and disputes it
      const disputeId = await pollUntil({ ...poll, what: `the reconciler's dispute of ${DISPUTER}'s openai/gpt-4-turbo interval` }, async () => {
        const info = await suite.router.intervalInfo(key.payer, key.provider, key.model, key.callsFrom);
        return info.disputes > 0n ? disputeIdOf(key, info.disputes - 1n) : null;
      });
      await pollUntil({ ...poll, what: "the oracle's answer to the reconciler's dispute" }, async () =>
        Number((await suite.router.disputeInfo(disputeId)).status) >= 2 ? true : null,
      );
      const checked = await checkResolution(client, usage, disputeId);
      const interval = await client.intervalRows(key);
      const planted = interval.rows.filter((r) => !firstIds.has(r.batchId));
      const honestRows = interval.rows.filter((r) => firstIds.has(r.batchId));
      const plantedTokens = planted.reduce((sum, r) => sum + r.charge.tokens, 0n);
      const plantedAmount = planted.reduce((sum, r) => sum + r.charge.amount, 0n);
      if (planted.length === 0 || checked.status.refund !== plantedAmount || checked.status.overbilledTokens !== plantedTokens) {
        throw new DemoError(
          `the second bill of ${plantedTokens} tokens (${plantedAmount} units) came back as ${checked.status.overbilledTokens} tokens overbilled, ${checked.status.refund} units refunded`,
        );
      }
      if (honestRows.some((r) => r.batchState !== "released" || r.heldBy !== null)) throw new DemoError("the honest first bill was held by the dispute: it should have stayed paid");
      return {
        value: { ...demoDispute(checked, DISPUTER), plantedTokens: plantedTokens.toString(), plantedAmount: plantedAmount.toString() },
        detail:
          `first bill released to the providers by the release stage; ${twice.length} openai/gpt-4-turbo calls of ${DISPUTER} logged again under new ids, settled in ` +
          `${newRecords.map((r) => `batch ${r.batchId.slice(0, 12)}…`).join(", ")} (same payer, provider, model, bucket from ${isoSeconds(key.callsFrom)})\n` +
          `        the reconciler compared all ${interval.rows.length} settled rows of the interval (${checked.status.billedTokens} tokens billed) with the usage API (${checked.reported}) ` +
          `and disputed it with ${DISPUTER}'s key: dispute ${disputeId.slice(0, 12)}…, ${honestRows.length} released row(s) named, ${planted.length} held\n` +
          `        resolved by the UsageOracle: ${checked.status.overbilledTokens} tokens overbilled = the second bill; ${formatTokenAmount(checked.status.refund, AGPT_UNIT)} refunded ` +
          `(exactly the second bill, ${plantedAmount} units), bond returned (tx ${checked.txHash.slice(0, 12)}…); the honest first bill stayed paid`,
      };
    });

    // 10. release and withdraw
    const withdrawn = await step("release", "past the dispute window: the release stage releases, providers withdraw", async () => {
      const moved = await advanceLocalChain(provider, { seconds: DISPUTE_WINDOW + 1 });
      const releasedAt = Date.now();
      await releasedByStage(settled.records.map((r) => r.batchId));
      const releaseMs = Date.now() - releasedAt;
      // each payee withdraws as `agentgpt provider withdraw --provider <name>` does (relayer/payout PayoutClient)
      const deployment = await loadDeployment(chain.connection.chainId);
      const value = new Map<string, bigint>();
      const paid: string[] = [];
      for (const [name] of suite.providerIds) {
        const payee = payees.get(name)!;
        const payout = new PayoutClient(await connectSuite(deployment, payee), payee);
        const [credits] = await payout.credits(name);
        if (credits!.credits === 0n) {
          value.set(name, 0n);
          continue;
        }
        const before = await suite.agpt.balanceOf(payee.address);
        const result = await payout.withdraw(name, payee.address);
        value.set(name, (await suite.agpt.balanceOf(payee.address)) - before);
        paid.push(`${name} ${formatTokenAmount(result.amount, AGPT_UNIT)} to ${payee.address.slice(0, 10)}… (tx ${result.hash.slice(0, 12)}…)`);
      }
      return {
        value,
        detail:
          `clock moved to ${new Date(moved.timestamp * 1000).toISOString()} (+${DISPUTE_WINDOW + 1} s); the relayer's release stage released ${settled.records.length} batch(es) ` +
          `within ${(releaseMs / 1000).toFixed(1)} s\n        providers paid (agentgpt provider withdraw): ${paid.join("; ") || "none"}`,
      };
    });

    // 11. the monitor's table
    await step("monitor", "agentgpt monitor litellm --granularity provider", async () => {
      let table: string;
      try {
        const collector = await MonitorCollector.open(config.config, { windowMs: 24 * 3600_000 });
        try {
          table = renderReport(buildReport(await collector.snapshot(), { granularity: "provider" }));
        } finally {
          await collector.close();
        }
      } catch (error) {
        throw new DemoError(`the monitor could not read the state: ${error instanceof Error ? error.message : String(error)}`);
      }
      return { value: undefined, detail: "the seed's cost table, from the router's events, the archive's batch files and the relayer's stores:", block: table };
    });

    // the money, to the unit
    const { checks, money } = await verifyMoney({ suite, settled, disputes: [overcharge, honest], withdrawn, initial, payers, payees });
    say(`checks: ${checks.join("; ")}`);
    const totalMs = Date.now() - started;
    const summary: DemoSummary = {
      chainId: chain.connection.chainId,
      router: routerAddress,
      token: suite.addresses.agpt,
      calls: count,
      queued: posted.queued,
      unbillable: posted.unbillable,
      duplicates: posted.duplicates,
      batches: settled.records.length,
      rows: settled.records.reduce((sum, r) => sum + r.rows, 0),
      rejectedRows: settled.records.reduce((sum, r) => sum + r.outcome!.rejected.length, 0),
      escrowed: settled.records.reduce((sum, r) => sum + BigInt(r.outcome!.escrowed), 0n).toString(),
      disputes: { overcharge, honest },
      ...money,
      checks,
      timings,
      totalMs,
      tempDir: dir,
      redisPrefix: prefix,
      nodeUrl: chain.url,
    };
    const failed = await cleanup.runAll();
    say(`done in ${(totalMs / 1000).toFixed(1)} s; cleaned up (chain, relayer, usage API, Redis keys, temporary files)${failed.length > 0 ? `, except: ${failed.join("; ")}` : ""}`);
    say("Next: run it for real with `agentgpt relayer start --config <file>` (see README), or read the flow in relayer/demo/run-demo.ts");
    if (options.json === true) say(JSON.stringify(summary));
    return summary;
  } catch (error) {
    if (abort.signal.aborted) {
      // the signal handler cleans up and exits with 130
      await cleanup.runAll();
      return await new Promise<never>(() => undefined);
    }
    const tail = logFile === "" ? "" : await readFile(logFile, "utf8").then((text) => text.trim().split("\n").slice(-15).join("\n"), () => "");
    const failed = await cleanup.runAll();
    if (tail !== "") out.write(`--- last relayer log lines ---\n${tail}\n`);
    say(`cleaned up after the failure${failed.length > 0 ? `, except: ${failed.join("; ")}` : ""}`);
    throw error;
  } finally {
    process.removeListener("SIGINT", interrupted);
    process.removeListener("SIGTERM", interrupted);
    if (previousDeployments === undefined) delete process.env[DEPLOYMENTS_DIR_VARIABLE];
    else process.env[DEPLOYMENTS_DIR_VARIABLE] = previousDeployments;
  }
}

/** A call's start time (unix seconds, fractional), as the spend log records it. */
function startOf(call: DemoCall): number {
  return Number(call.entry["startTime"]);
}

/** The same call logged again under new ids (as a LiteLLM retry of the logging callback might): billed twice. */
function relogged(call: DemoCall): DemoCall {
  const entry = structuredClone(call.entry);
  const suffix = randomBytes(6).toString("hex");
  entry["id"] = `${String(entry["id"])}-again-${suffix}`;
  entry["litellm_call_id"] = `${String(entry["litellm_call_id"])}-again-${suffix}`;
  const response = entry["response"] as Record<string, unknown> | undefined;
  if (response !== undefined && typeof response === "object") response["id"] = entry["id"];
  return { ...call, entry };
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function demoDispute(checked: CheckedDispute, alias: string): DemoDispute {
  const s = checked.status;
  return {
    disputeId: s.disputeId,
    payer: alias,
    provider: checked.providerName,
    model: checked.modelName,
    callsFrom: s.callsFrom,
    callsTo: s.callsTo,
    rows: s.rows,
    billedTokens: s.billedTokens.toString(),
    reportedTokens: checked.reported.toString(),
    heldTokens: s.heldTokens.toString(),
    heldAmount: s.heldAmount.toString(),
    overbilledTokens: s.overbilledTokens.toString(),
    refund: s.refund.toString(),
    toProvider: checked.toProvider.toString(),
    bond: s.bond.toString(),
    bondReturned: checked.bondReturned,
  };
}

function aliasOf(payers: ReadonlyMap<string, Wallet>, address: string): string {
  for (const [alias, wallet] of payers) if (wallet.address.toLowerCase() === address.toLowerCase()) return alias;
  return address;
}

/** The payer's accepted row (on provider/model when given) with the most tokens, in any settled batch. */
function findRow(records: readonly SettlementRecord[], files: ReadonlyMap<string, BatchFile>, payer: string, provider?: string, model?: string): { batchId: string; index: number } | null {
  let best: { batchId: string; index: number; tokens: bigint } | null = null;
  for (const record of records) {
    const rejected = new Set(record.outcome!.rejected.map(([index]) => index));
    files.get(record.batchId)!.rows.forEach((row, index) => {
      if (rejected.has(index) || row.user.toLowerCase() !== payer.toLowerCase()) return;
      if ((provider !== undefined && row.providerName !== provider) || (model !== undefined && row.modelName !== model)) return;
      if (best === null || BigInt(row.tokens) > best.tokens) best = { batchId: record.batchId, index, tokens: BigInt(row.tokens) };
    });
  }
  const found = best as { batchId: string; index: number } | null;
  return found === null ? null : { batchId: found.batchId, index: found.index };
}

interface MoneyInputs {
  suite: DeployedSuite;
  settled: { records: SettlementRecord[]; files: Map<string, BatchFile> };
  disputes: readonly DemoDispute[];
  withdrawn: ReadonlyMap<string, bigint>;
  initial: ReadonlyMap<string, bigint>;
  payers: ReadonlyMap<string, Wallet>;
  payees: ReadonlyMap<string, Wallet>;
}

/** Every unit accounted for; throws a DemoError naming the first mismatch. */
async function verifyMoney(inputs: MoneyInputs): Promise<{ checks: string[]; money: DemoMoney }> {
  const { suite } = inputs;
  const charged = new Map<string, bigint>();
  const earned = new Map<string, bigint>();
  for (const record of inputs.settled.records) {
    const rejected = new Set(record.outcome!.rejected.map(([index]) => index));
    inputs.settled.files.get(record.batchId)!.rows.forEach((row, index) => {
      if (rejected.has(index)) return;
      const user = row.user.toLowerCase();
      charged.set(user, (charged.get(user) ?? 0n) + BigInt(row.amount));
      earned.set(row.providerName, (earned.get(row.providerName) ?? 0n) + BigInt(row.amount));
    });
  }
  // each dispute: the refund back to the payer; a lost bond from the payer to the provider
  for (const d of inputs.disputes) {
    const user = inputs.payers.get(d.payer)!.address.toLowerCase();
    const lost = d.bondReturned ? 0n : BigInt(d.bond);
    charged.set(user, (charged.get(user) ?? 0n) - BigInt(d.refund) + lost);
    earned.set(d.provider, (earned.get(d.provider) ?? 0n) - BigInt(d.refund) + lost);
  }

  const checks: string[] = [];
  const payers: DemoMoney["payers"] = {};
  for (const [alias, wallet] of inputs.payers) {
    const balance = await suite.router.balanceOf(wallet.address);
    const spent = inputs.initial.get(alias)! - balance;
    const expected = charged.get(wallet.address.toLowerCase()) ?? 0n;
    if (spent !== expected) throw new DemoError(`payer ${alias} was charged ${spent} units; its accepted rows less its refund come to ${expected}`);
    payers[alias] = { address: wallet.address, deposited: inputs.initial.get(alias)!.toString(), balance: balance.toString(), charged: spent.toString() };
  }
  checks.push(`${inputs.payers.size} payers charged exactly their accepted rows less refunds, plus the bond lost on the honest dispute`);
  for (const [name, amount] of inputs.withdrawn) {
    const expected = earned.get(name) ?? 0n;
    if (amount !== expected) throw new DemoError(`provider ${name} withdrew ${amount} units; its released rows come to ${expected}`);
  }
  checks.push(`${inputs.withdrawn.size} providers paid exactly their rows less refunds, plus the bond won`);
  const [balance, liabilities, escrow] = await Promise.all([suite.agpt.balanceOf(await suite.router.getAddress()), suite.router.totalLiabilities(), suite.router.totalEscrow()]);
  if (balance !== liabilities) throw new DemoError(`the router holds ${balance} units but owes ${liabilities}`);
  if (escrow !== 0n) throw new DemoError(`${escrow} units are still escrowed after the release`);
  checks.push(`solvent: the router holds exactly what it owes (${formatTokenAmount(balance, AGPT_UNIT)} in deposits), nothing left in escrow`);
  const providers: DemoMoney["providers"] = {};
  for (const [name, amount] of inputs.withdrawn) providers[name] = { payee: inputs.payees.get(name)!.address, withdrawn: amount.toString() };
  return { checks, money: { payers, providers, routerBalance: balance.toString(), liabilities: liabilities.toString(), escrowLeft: escrow.toString() } };
}
