/**
 * The backfill against a real PostgreSQL holding LiteLLM's spend log table as LiteLLM's schema defines it, a real
 * Redis and the real ingest server over HTTP: calls whose POST LiteLLM dropped (relayer down, Redis down) are
 * recovered from LiteLLM's own records, every call is billed exactly once (compared call by call with the spend
 * records), and a record that disagrees with the log received is a conflict, never a second charge.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";

import { expect } from "chai";

import { dedupeSafeLookbackMs, DEFAULT_BACKFILL, loadRelayerConfig } from "../../../relayer/config/index.js";
import { BackfillError, PgSpendSource, runBackfill, startBackfill } from "../../../relayer/backfill/index.js";
import { SubmissionBuilder, spendLogParser } from "../../../relayer/ingest/index.js";
import type { Receipt, ReceiptQueue } from "../../../relayer/queue/index.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/postgres.js";
import { call, PAYER_BACKEND, PAYER_RESEARCH, queueContents, REPO, startTestIngest, type Json, type TestIngest, writeConfig, uniquePrefix, testRedis, dropPrefix } from "../ingest/harness.js";
import { ProcessTelemetry } from "../../../relayer/telemetry/process-telemetry.js";
import { TcpProxy } from "../queue/tcp-proxy.js";
import { LiteLLMDatabase } from "./litellm-db.js";

const BIN = join(REPO, "bin", "agentgpt.mjs");
/** Calls start three hours ago (within the dedupe records' time: a backfill reads no earlier), at the fixture's microseconds. */
const BASE = Math.floor(Date.now() / 3_600_000) * 3600 - 3 * 3600 + 0.412311;
const RANGE = { fromMs: (Math.floor(BASE) - 3600) * 1000, toMs: (Math.floor(BASE) + 2 * 3600) * 1000 };
const DEDUPE_TTL_MS = 32 * 86_400_000; // ingest.dedupe_ttl's default, which the tests' configuration keeps

function agentgpt(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `count` LiteLLM calls a few hundred ms apart, by two payers, with varied usage, plus a failure and a cache hit. */
function traffic(count: number, startSeconds = BASE): Json[] {
  const calls: Json[] = [];
  for (let i = 0; i < count; i++) {
    const prompt = 100 + ((i * 37) % 900);
    const completion = 20 + ((i * 11) % 300);
    const metadata = i % 3 === 0 ? { user_api_key_alias: "research-key", user_api_key_team_id: "research" } : {};
    calls.push(
      call(
        {
          startTime: startSeconds + i * 0.250137,
          endTime: startSeconds + i * 0.250137 + 1.5,
          prompt_tokens: prompt,
          completion_tokens: completion,
          total_tokens: prompt + completion,
          response_cost: Number(((prompt * 10 + completion * 30) / 1e6).toFixed(6)),
          trace_id: `trace-${i}`,
        },
        metadata,
      ),
    );
  }
  calls.push(call({ status: "failure", error_str: "RateLimitError", prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, startTime: startSeconds + 0.5, endTime: startSeconds + 1 }));
  calls.push(call({ cache_hit: true, startTime: startSeconds + 0.75, endTime: startSeconds + 0.8 }));
  return calls;
}

async function allReceipts(queue: ReceiptQueue): Promise<Receipt[]> {
  const contents = await queueContents(queue);
  return Object.values(contents.receipts).flat();
}

/** What billing depends on: the same for a logged and a backfilled copy of a call. */
function billing(receipt: Receipt) {
  return [receipt.id, receipt.chain, receipt.payer, receipt.provider, receipt.model, receipt.route, receipt.tokens, receipt.amountMilli, receipt.startTime];
}

describe("relayer/backfill: calls LiteLLM's logger never delivered, recovered from LiteLLM's spend records", function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let litellm: LiteLLMDatabase;
  let ingest: TestIngest | undefined;

  beforeEach(async function () {
    database = await createTestDatabase("backfill");
    litellm = await LiteLLMDatabase.create(database.url);
  });

  afterEach(async function () {
    await ingest?.stop();
    ingest = undefined;
    await litellm.close();
    await database.drop();
  });

  it("Redis down, the relayer down, calls logged twice: after the backfill every call is billed exactly once, call by call", async function () {
    const proxy = new TcpProxy();
    await proxy.start();
    try {
      ingest = await startTestIngest({ redisUrl: proxy.url });
      const calls = traffic(40);
      await litellm.writeSpendLog(calls); // LiteLLM keeps every call in its database, whatever its logger did
      const bodies = [calls.slice(0, 10), calls.slice(10, 20), calls.slice(20, 30), calls.slice(30)];
      expect((await ingest.post(JSON.stringify(bodies[0]))).status).to.equal(200);
      // Redis down: 503, and LiteLLM drops the batch (it never sends one again)
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await ingest.post(JSON.stringify(bodies[1]));
      expect(refused.status).to.equal(503);
      expect(refused.body.reason).to.include("LiteLLM's generic API logger does not send a batch again");
      await proxy.restore();
      for (let attempt = 0; attempt < 50 && ingest.runtime.redis.status !== "ready"; attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
      // bodies[2]: the relayer was down (restarting): never received
      // bodies[3], and two of its calls logged again by LiteLLM a moment later: another endTime, float noise in the cost
      const twice = bodies[3]!.slice(0, 2).map((entry) => ({ ...structuredClone(entry), endTime: Number(entry["endTime"]) + 0.004, response_cost: Number(entry["response_cost"]) + 1e-18 * 3 + Number.EPSILON * Number(entry["response_cost"]) }));
      expect((await ingest.post(JSON.stringify(bodies[3]))).body).to.deep.include({ queued: 10, unbillable: 2 });
      expect((await ingest.post(JSON.stringify(twice))).body).to.deep.include({ queued: 0, duplicates: 2, conflicts: 0 });

      const config = ingest.config;
      const source = new PgSpendSource({ url: database.url });
      try {
        const options = { dedupeTtlMs: DEDUPE_TTL_MS, builder: SubmissionBuilder.fromConfig(config), parse: spendLogParser({ maxTokensPerCall: 1e7 }), pageSize: 7 };
        const result = await runBackfill(source, ingest.runtime.queue, RANGE, options);
        // bodies[1] and bodies[2]: 20 calls recovered; the 21 others (the failure included) already received; the cache hit skipped
        expect(result).to.deep.include({ read: 42, recovered: 20, alreadyReceived: 21, conflicts: 0, skippedCacheHits: 1 });
        expect(result.invalid).to.deep.equal([]);
        const again = await runBackfill(source, ingest.runtime.queue, RANGE, options);
        expect(again).to.deep.include({ recovered: 0, alreadyReceived: 41, conflicts: 0 });
      } finally {
        await source.close();
      }

      // Call by call: each billable spend record has exactly one receipt, under its request_id, and nothing else is billed.
      const receipts = await allReceipts(ingest.runtime.queue);
      const rows = (await litellm.rows()).filter((row) => !row.requestId.includes("_cache_hit"));
      const billable = rows.filter((row) => row.tokens > 0);
      expect(receipts.map((receipt) => receipt.id).sort()).to.deep.equal(billable.map((row) => row.requestId).sort());
      expect(new Set(receipts.map((receipt) => receipt.id)).size).to.equal(receipts.length);
      // A recovered receipt bills what the logger path would have: same id, payer, chain, route, tokens, amount.
      const builder = SubmissionBuilder.fromConfig(config);
      const parse = spendLogParser({ maxTokensPerCall: 1e7 });
      const expected = calls
        .filter((entry) => entry["status"] !== "failure" && entry["cache_hit"] !== true)
        .map((entry) => {
          const parsed = parse(entry);
          if (!parsed.ok) throw new Error(parsed.reason);
          const built = builder.build(parsed.log, 0);
          if (built.kind !== "receipt") throw new Error(`not billable: ${built.body.reason}`);
          return billing({ ...built.body, id: built.key });
        });
      expect(receipts.map(billing).sort()).to.deep.equal(expected.sort());
      expect(new Set(receipts.map((receipt) => receipt.payer))).to.deep.equal(new Set([PAYER_BACKEND, PAYER_RESEARCH]));
    } finally {
      await proxy.cut();
    }
  });

  it("a spend record that disagrees with the log received is kept as a conflict, never billed a second time", async function () {
    this.timeout(120_000); // two CLI processes
    ingest = await startTestIngest();
    const [logged, other] = traffic(2);
    await ingest.post(JSON.stringify([logged, other]));
    // LiteLLM's record of the first call says other usage (e.g. a streamed call whose usage was updated)
    await litellm.writeSpendLog([{ ...logged!, completion_tokens: 999, total_tokens: Number(logged!["prompt_tokens"]) + 999 }, other!]);
    const source = new PgSpendSource({ url: database.url });
    try {
      const result = await runBackfill(source, ingest.runtime.queue, RANGE, { dedupeTtlMs: DEDUPE_TTL_MS, builder: SubmissionBuilder.fromConfig(ingest.config), parse: spendLogParser({ maxTokensPerCall: 1e7 }) });
      expect(result).to.deep.include({ read: 2, recovered: 0, alreadyReceived: 1, conflicts: 1 });
    } finally {
      await source.close();
    }
    const receipts = await allReceipts(ingest.runtime.queue);
    expect(receipts.map((receipt) => [receipt.id, receipt.tokens])).to.deep.equal([
      [logged!["id"], logged!["total_tokens"]],
      [other!["id"], other!["total_tokens"]],
    ]);
    const conflicts = await ingest.runtime.queue.store.listConflicts();
    expect(conflicts.map((conflict) => [conflict.id, conflict.kept.kind, conflict.other.kind, conflict.other.record["completionTokens"]])).to.deep.equal([
      [logged!["id"], "receipt", "receipt", 999],
    ]);
    // visible to operators
    const listed = await agentgpt(["relayer", "conflicts", "--config", ingest.config.files[0]!]);
    expect(listed.code).to.equal(0);
    expect(listed.stdout).to.match(new RegExp(`^1 log\\(s\\) disagree with the log that counts for their call \\(kept here, never billed\\)\n\\S+  ${logged!["id"]}  kept a receipt; other log: ${Number(logged!["prompt_tokens"]) + 999} tokens, cost `));
    const json = JSON.parse((await agentgpt(["relayer", "conflicts", "--config", ingest.config.files[0]!, "--json"])).stdout) as { count: number };
    expect(json.count).to.equal(1);
  });

  it("a spend record it cannot read (spend NaN or Infinity, which PostgreSQL's double precision holds) is listed as invalid; the records after it are still recovered", async function () {
    ingest = await startTestIngest();
    const calls = traffic(5).slice(0, 5);
    // the second and fourth: a cost that LiteLLM's Float column can hold but no JSON number can
    await litellm.writeSpendLog(calls.map((entry, index) => (index === 1 ? { ...entry, response_cost: Number.NaN } : index === 3 ? { ...entry, response_cost: Number.POSITIVE_INFINITY } : entry)));
    const source = new PgSpendSource({ url: database.url });
    try {
      // pages of two: each unreadable record sits in a page with a readable one, and the cursor must pass it
      const result = await runBackfill(source, ingest.runtime.queue, RANGE, { dedupeTtlMs: DEDUPE_TTL_MS, builder: SubmissionBuilder.fromConfig(ingest.config), parse: spendLogParser({ maxTokensPerCall: 1e7 }), pageSize: 2 });
      expect(result).to.deep.include({ read: 5, recovered: 3, alreadyReceived: 0, conflicts: 0 });
      expect(result.invalid.map((entry) => [entry.requestId, entry.reason.split(":")[0]])).to.deep.equal([
        [calls[1]!["id"], "spend"],
        [calls[3]!["id"], "spend"],
      ]);
      expect(result.invalid[0]!.reason).to.include("NaN");
    } finally {
      await source.close();
    }
    const receipts = await allReceipts(ingest.runtime.queue);
    expect(receipts.map((receipt) => receipt.id).sort()).to.deep.equal([calls[0]!["id"], calls[2]!["id"], calls[4]!["id"]].sort());
  });

  it("refuses a range that starts before the dedupe records' time: a call billed and forgotten is never billed again", async function () {
    this.timeout(60_000); // one CLI process
    ingest = await startTestIngest();
    const oldBase = BASE - 40 * 86_400; // 40 days ago, past ingest.dedupe_ttl (32d)
    const old = traffic(2, oldBase).slice(0, 2);
    await ingest.post(JSON.stringify(old)); // billed then
    // ... and forgotten since: Redis let their dedupe records expire after dedupe_ttl
    for (const entry of old) expect(await ingest.runtime.queue.store.redis.del(ingest.runtime.queue.store.keys.seen(String(entry["id"])))).to.equal(1);
    await litellm.writeSpendLog(old);
    const range = { fromMs: (Math.floor(oldBase) - 3600) * 1000, toMs: (Math.floor(oldBase) + 3600) * 1000 };
    const source = new PgSpendSource({ url: database.url });
    try {
      const options = { dedupeTtlMs: DEDUPE_TTL_MS, builder: SubmissionBuilder.fromConfig(ingest.config), parse: spendLogParser({ maxTokensPerCall: 1e7 }) };
      const refused = await runBackfill(source, ingest.runtime.queue, range, options).catch((error: unknown) => error);
      expect(refused).to.be.instanceOf(BackfillError);
      expect((refused as BackfillError).code).to.equal("beyond_dedupe");
      expect((refused as Error).message).to.match(/^calls that started before \S+Z may have been billed and their dedupe records expired \(ingest\.dedupe_ttl 32d\): a backfill from \S+Z could bill them a second time; start at \S+Z or later$/);
      // the attack it stops: the same range read as if it were recent bills both calls a second time
      const unsafe = await runBackfill(source, ingest.runtime.queue, range, { ...options, now: () => range.toMs + 3_600_000 });
      expect(unsafe.recovered).to.equal(2);
    } finally {
      await source.close();
    }
    // the CLI says so and names the fix
    const cli = await agentgpt(["litellm", "backfill", "--config", ingest.config.files[0]!, "--since", "40d"], { LITELLM_DATABASE_URL: database.url });
    expect(cli.code).to.equal(2);
    expect(cli.stderr).to.match(/^agentgpt: calls that started before \S+ may have been billed and their dedupe records expired \(ingest\.dedupe_ttl 32d\)/);
  });

  it("agentgpt litellm backfill: recovers once, says what it did, and names the fix for bad input", async function () {
    this.timeout(180_000); // five CLI processes
    const prefix = uniquePrefix("backfill-cli");
    const configFile = writeConfig(prefix);
    const redis = testRedis();
    try {
      const calls = traffic(6);
      await litellm.writeSpendLog(calls);
      const env = { LITELLM_DATABASE_URL: database.url };
      const since = new Date(RANGE.fromMs).toISOString();
      const until = new Date(RANGE.toMs).toISOString();
      const first = await agentgpt(["litellm", "backfill", "--config", configFile, "--since", since, "--until", until, "--json"], env);
      expect(first.stderr).to.equal("");
      expect(first.code).to.equal(0);
      expect(JSON.parse(first.stdout)).to.deep.include({ read: 8, recovered: 6, unbillable: 1, alreadyReceived: 0, skippedCacheHits: 1 });
      const second = await agentgpt(["litellm", "backfill", "--config", configFile, "--since", since, "--until", until], env);
      expect(second.code).to.equal(0);
      expect(second.stdout).to.include("recovered (queued now, never received from LiteLLM's logger): 0\nalready received: 7\n");

      const badTime = await agentgpt(["litellm", "backfill", "--config", configFile, "--since", "last tuesday"], env);
      expect([badTime.code, badTime.stderr]).to.deep.equal([2, "agentgpt: --since last tuesday: give a UTC date-time (2026-12-03T14:00:00Z, 2026-12-03) or a time before now (24h, 30m, 7d)\n"]);
      const noUrl = await agentgpt(["litellm", "backfill", "--config", configFile, "--since", "24h"], { LITELLM_DATABASE_URL: "" });
      expect(noUrl.code).to.equal(2);
      expect(noUrl.stderr).to.match(/^agentgpt: set LITELLM_DATABASE_URL to LiteLLM's database URL/);
      const wrongDb = await agentgpt(["litellm", "backfill", "--config", configFile, "--since", "24h"], { LITELLM_DATABASE_URL: database.url.replace(/\/[^/]+$/, "/test") });
      expect(wrongDb.code).to.equal(2);
      expect(wrongDb.stderr).to.match(/no table "LiteLLM_SpendLogs"/);
      expect(wrongDb.stderr).to.not.include("postgresql://");
    } finally {
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it("as a stage, after an outage longer than lookback reads from where the last good run stopped, back to the dedupe records' reach", async function () {
    const now = Date.now();
    const prefix = uniquePrefix("backfill-gap");
    const config = loadRelayerConfig(writeConfig(prefix, { extra: "backfill:\n  database_url_env: TEST_LITELLM_DB\n  lookback: 1h\n  delay: 1m\n" }), { env: {} });
    // calls 5 h and 30 min ago; LiteLLM's logger delivered none of them
    const inGap = traffic(1, now / 1000 - 5 * 3600).slice(0, 1);
    const recent = traffic(1, now / 1000 - 1800).slice(0, 1);
    await litellm.writeSpendLog([...inGap, ...recent]);
    let clock = now - 6 * 3_600_000; // the last good run, 6 h ago
    const telemetry = new ProcessTelemetry({ defaultMetrics: false });
    const stage = await startBackfill(config, { env: { TEST_LITELLM_DB: database.url }, timer: false, telemetry, now: () => clock });
    const redis = testRedis();
    try {
      expect(await stage.runOnce()).to.deep.include({ fromMs: clock - 3_600_000, toMs: clock - 60_000, read: 0 });
      // 6 h later (the database, Redis or every relayer down meanwhile): one run reads the whole gap
      clock = now;
      const caughtUp = await stage.runOnce();
      expect(caughtUp).to.deep.include({ fromMs: now - 6 * 3_600_000 - 60_000, toMs: now - 60_000, read: 2, recovered: 2 });
      expect(Number(await redis.get(`{${prefix}:ingest}:backfill:covered`))).to.equal(now - 60_000);
      const metrics = await telemetry.registry.metrics();
      expect(metrics).to.include('agentgpt_backfill_runs_total{outcome="ok"} 2');
      expect(metrics).to.include('agentgpt_backfill_calls_total{outcome="recovered"} 2');
      expect(metrics).to.include(`agentgpt_backfill_covered_until_timestamp_seconds ${(now - 60_000) / 1000}`);
      // the next run is back to its usual window
      expect(await stage.runOnce()).to.deep.include({ fromMs: now - 3_600_000, recovered: 0, alreadyReceived: 1 });
    } finally {
      await stage.stop();
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }

    // with a dedupe_ttl of 3 h, a 6 h gap is read only from the dedupe records' reach: the older call is left out
    const shortPrefix = uniquePrefix("backfill-gap-ttl");
    const short = loadRelayerConfig(
      writeConfig(shortPrefix, { extra: "ingest:\n  dedupe_ttl: 3h\nbackfill:\n  database_url_env: TEST_LITELLM_DB\n  lookback: 1h\n  delay: 1m\n" }),
      { env: {} },
    );
    clock = now - 6 * 3_600_000;
    const bounded = await startBackfill(short, { env: { TEST_LITELLM_DB: database.url }, timer: false, now: () => clock });
    try {
      expect(await bounded.runOnce()).to.deep.include({ read: 0 });
      clock = now;
      expect(await bounded.runOnce()).to.deep.include({ fromMs: now - dedupeSafeLookbackMs(3 * 3_600_000), read: 1, recovered: 1 });
    } finally {
      await bounded.stop();
      await dropPrefix(redis, shortPrefix).catch(() => undefined);
    }
  });

  it("reports its progress page by page and stops between pages when asked (a long catch-up keeps what it read)", async function () {
    ingest = await startTestIngest();
    const calls = traffic(5).slice(0, 5);
    await litellm.writeSpendLog(calls);
    const startMs = (entry: Json) => Math.floor((Number(entry["startTime"]) * 1e6 + 500) / 1000);
    const source = new PgSpendSource({ url: database.url });
    try {
      const base = { dedupeTtlMs: DEDUPE_TTL_MS, builder: SubmissionBuilder.fromConfig(ingest.config), parse: spendLogParser({ maxTokensPerCall: 1e7 }), pageSize: 2 };
      const progress: number[] = [];
      const stopped = await runBackfill(source, ingest.runtime.queue, RANGE, { ...base, onProgress: async (ms) => void progress.push(ms), stopping: () => progress.length === 1 });
      expect(stopped).to.deep.include({ read: 2, recovered: 2 });
      expect(progress).to.deep.equal([startMs(calls[1]!)]);
      const rest = await runBackfill(source, ingest.runtime.queue, { ...RANGE, fromMs: progress[0]! }, { ...base, onProgress: async (ms) => void progress.push(ms) });
      // the record of that very millisecond is read again (a duplicate), the rest recovered; the last page reports nothing
      expect(rest).to.deep.include({ read: 4, recovered: 3, alreadyReceived: 1 });
      expect(progress).to.deep.equal([startMs(calls[1]!), startMs(calls[2]!), startMs(calls[4]!)]);
    } finally {
      await source.close();
    }
    expect((await allReceipts(ingest.runtime.queue)).map((receipt) => receipt.id)).to.have.members(calls.map((entry) => entry["id"]));
  });

  it("runs as a stage of the relayer (backfill: section) over [now - lookback, now - delay], reading read-only", async function () {
    const prefix = uniquePrefix("backfill-stage");
    const config = loadRelayerConfig(writeConfig(prefix, { extra: "backfill:\n  database_url_env: TEST_LITELLM_DB\n  lookback: 1h\n  delay: 1m\n" }), { env: {} });
    expect(config.backfill).to.deep.equal({ ...DEFAULT_BACKFILL, databaseUrlEnv: "TEST_LITELLM_DB", lookbackMs: 3_600_000, delayMs: 60_000 });
    const recent = traffic(3, Date.now() / 1000 - 600);
    const tooRecent = traffic(1, Date.now() / 1000 - 10).slice(0, 1); // inside the delay: LiteLLM may still be writing
    await litellm.writeSpendLog([...recent, ...tooRecent]);
    const stage = await startBackfill(config, { env: { TEST_LITELLM_DB: database.url }, timer: false });
    const redis = testRedis();
    try {
      const result = await stage.runOnce();
      expect(result).to.deep.include({ read: 5, recovered: 3, unbillable: 1, skippedCacheHits: 1 });
      // the source never writes: a write in its session is refused by PostgreSQL
      const source = new PgSpendSource({ url: database.url });
      try {
        await source.open();
        let refused: unknown;
        await (source as unknown as { pool: { query(sql: string): Promise<unknown> } }).pool.query('DELETE FROM "LiteLLM_SpendLogs"').catch((error: unknown) => (refused = error));
        expect((refused as { code?: string }).code).to.equal("25006"); // read_only_sql_transaction
      } finally {
        await source.close();
      }
    } finally {
      await stage.stop();
      await dropPrefix(redis, prefix);
      redis.disconnect();
    }
  });
});
