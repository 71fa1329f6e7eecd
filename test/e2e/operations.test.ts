/**
 * Operations end to end: the real relayer process (`agentgpt relayer start`) against a `hardhat node` and Redis,
 * scraped like Prometheus scrapes it, after LiteLLM-style calls were settled.
 * - every metric the Grafana dashboard (ops/grafana/agentgpt-relayer.json) queries is exported, and the values move:
 *   batches sealed, fees paid, the lease held, the signer's balance, the backfill's runs and coverage (it reads a
 *   LiteLLM spend log table in a real PostgreSQL); receipts pending back to 0 once settled;
 * - /readyz answers per stage (ingest, batcher, settler, reconciler) with what each checked;
 * - a second process on the same chain stands by (ready, and says so) and serves /metrics and /readyz on its
 *   metrics.listen listener; with its signer below settler.min_signer_balance it is not ready, and says why.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { expect } from "chai";
import { formatEther, Wallet } from "ethers";

import { freePort } from "../helpers/hardhat-node.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { metricNamesIn, parseExposition, samplesOf, total } from "../helpers/prometheus.js";
import { startRelayerEnvironment, type RelayerEnvironment } from "../helpers/relayer-environment.js";
import { postSpend } from "../helpers/relayer-process.js";
import { spendLog } from "../helpers/spend-logs.js";
import { LiteLLMDatabase } from "../relayer/backfill/litellm-db.js";

const DASHBOARD = "ops/grafana/agentgpt-relayer.json";

interface StageReport {
  ready: boolean;
  standby: boolean;
  checks: Record<string, { ok: boolean; detail: string; standby?: boolean }>;
}
interface ReadyBody {
  status?: string;
  error?: string;
  reason?: string;
  stages: Record<string, StageReport>;
}

/** Every `expr` of the dashboard's panels (rows included). */
function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { panels: Array<{ targets?: Array<{ expr: string }>; panels?: unknown[] }>; templating: { list: Array<{ definition?: string }> } };
  const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
  for (const variable of dashboard.templating.list) if (variable.definition !== undefined) exprs.push(variable.definition);
  return exprs;
}

async function scrape(url: string) {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).to.equal(200);
  expect(response.headers.get("content-type")).to.match(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

async function readyz(url: string): Promise<{ status: number; body: ReadyBody }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as ReadyBody };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("e2e: operations (metrics, per-stage readiness, Grafana dashboard)", function () {
  this.timeout(180_000);
  let env: RelayerEnvironment;
  let database: TestDatabase;
  let litellm: LiteLLMDatabase;
  /** the backfill stage reads LiteLLM's spend log table from here (a real PostgreSQL, LiteLLM's schema) */
  let backfillEnv: Record<string, string>;

  before(async function () {
    database = await createTestDatabase("ops");
    litellm = await LiteLLMDatabase.create(database.url);
    backfillEnv = { OPS_LITELLM_DB: database.url };
    // a reconciler too (no usage APIs, no payer keys: it follows disputes), and the backfill, so every stage reports
    env = await startRelayerEnvironment({
      label: "ops",
      payers: 2,
      configExtra: "reconciler:\n  interval: 1s\nbackfill:\n  database_url_env: OPS_LITELLM_DB\n  interval: 10s\n",
    });
  });
  after(async function () {
    if (this.currentTest?.state === "failed") env?.printLogs(5000);
    await env?.close();
    await litellm?.close();
    await database?.drop();
  });

  it("exports every metric the dashboard queries, with values that move, and answers /readyz per stage", async function () {
    const { setup, suite, prefix } = env;
    await env.spawn({ env: backfillEnv });

    // ready once the settler took its lease; every stage says what it checked
    const ready = await until("the relayer is ready", async () => {
      const answer = await readyz(setup.url);
      return answer.status === 200 && answer.body.stages["settler:local"]?.checks["lease"]?.standby !== true ? answer : undefined;
    });
    expect(ready.body.status).to.equal("ready");
    expect(Object.keys(ready.body.stages).sort()).to.deep.equal(["batcher:local", "ingest", "reconciler:local", "settler:local"]);
    expect(Object.keys(ready.body.stages["settler:local"]!.checks).sort()).to.deep.equal(["balance", "chain", "lease", "redis", "rpc"]);
    expect(Object.keys(ready.body.stages["reconciler:local"]!.checks).sort()).to.deep.equal(["chain", "redis", "rpc"]);
    expect(ready.body.stages["settler:local"]!.checks["lease"]!.detail).to.match(/^held/);
    expect(ready.body.stages["settler:local"]!.checks["balance"]!.detail).to.match(/above settler\.min_signer_balance 0$/);
    expect(ready.body.stages["ingest"]!.checks["redis"]).to.deep.equal({ ok: true, detail: "ok" });
    expect((await fetch(`${setup.url}/healthz`)).status).to.equal(200);

    // before any call: nothing sealed, nothing paid
    const before = await scrape(setup.url);
    expect(total(before, "agentgpt_batcher_batches_sealed_total")).to.equal(0);
    expect(total(before, "agentgpt_settler_fees_paid_native_total")).to.equal(0);

    const logs = Array.from({ length: 24 }, (_, i) => spendLog(i % 2, i % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 200 + i * 37, prefix));
    const posted = await postSpend(setup.url, logs.map((log) => log.entry));
    expect(posted.status, JSON.stringify(posted.body)).to.equal(200);
    // receipts pending while they wait (the pool or an unsettled batch), then every one settled
    const settled = await env.settled(logs.length, { timeoutMs: 60_000, countRejected: false });
    expect(settled.receipts_settled).to.equal(logs.length);

    const after = await scrape(setup.url);
    // every metric the dashboard queries is exported by the running relayer
    const queried = new Set(dashboardExpressions().flatMap(metricNamesIn));
    expect(queried.size).to.be.greaterThan(25);
    const missing = [...queried].filter((name) => !after.names.has(name));
    expect(missing, "dashboard metrics the relayer does not export").to.deep.equal([]);

    // the values moved
    expect(total(after, "agentgpt_backfill_runs_total", { outcome: "ok" })).to.be.greaterThan(0);
    expect(total(after, "agentgpt_backfill_covered_until_timestamp_seconds")).to.be.within(Date.now() / 1000 - 600, Date.now() / 1000);
    expect(total(after, "agentgpt_batcher_batches_sealed_total", { chain: "local" })).to.be.greaterThan(0);
    expect(total(after, "agentgpt_batcher_receipts_sealed_total", { chain: "local" })).to.equal(logs.length);
    expect(total(after, "agentgpt_settler_batches_final_total", { chain: "local" })).to.equal(total(after, "agentgpt_batcher_batches_sealed_total", { chain: "local" }));
    expect(total(after, "agentgpt_settler_receipts_settled_total", { chain: "local" })).to.equal(logs.length);
    expect(total(after, "agentgpt_ingest_receipts_queued_total", { chain: "local" })).to.equal(logs.length);
    const fees = total(after, "agentgpt_settler_fees_paid_native_total", { chain: "local", outcome: "settled" });
    expect(fees).to.be.greaterThan(0);
    expect(total(after, "agentgpt_settler_gas_used_total", { chain: "local", outcome: "settled" })).to.be.greaterThan(21_000);
    expect(total(after, "agentgpt_settler_settlement_seconds_count", { chain: "local" })).to.equal(total(after, "agentgpt_settler_batches_final_total", { chain: "local" }));
    // pending back to 0 after settlement
    expect(total(after, "agentgpt_batcher_receipts_pending", { chain: "local" })).to.equal(0);
    expect(total(after, "agentgpt_settler_receipts_pending", { chain: "local" })).to.equal(0);
    expect(total(after, "agentgpt_settler_oldest_batch_age_seconds", { chain: "local" })).to.equal(0);
    expect(total(after, "agentgpt_batcher_oldest_receipt_age_seconds", { chain: "local" })).to.equal(0);
    // the signer's balance is the chain's, and the fees left it
    const balance = await suite.provider.getBalance(new Wallet(suite.relayerKey).address);
    // not closeTo: hardhat's chai matchers take closeTo over (bigints) and refuse fractions once another file loaded them
    // the gauge reads the chain at scrape time through a 1 s cache: scrape again until it shows the balance after the fees
    const balanceGauge = async () => samplesOf(await scrape(setup.url), "agentgpt_settler_signer_balance_native", { chain: "local" })[0]!.value;
    const exported = await until("the balance gauge shows the chain's balance", async () => {
      const value = await balanceGauge();
      return Math.abs(value - Number(formatEther(balance))) <= 1e-6 ? value : undefined;
    });
    expect(Math.abs(exported - Number(formatEther(balance))), `exported ${exported}, chain ${formatEther(balance)}`).to.be.at.most(1e-6);
    expect(samplesOf(after, "agentgpt_lease_held", { stage: "settler", chain: "local" })[0]!.value).to.equal(1);
    expect(samplesOf(after, "agentgpt_rpc_breaker_state", { chain: "local", stage: "settler" }).map((s) => s.value)).to.deep.equal([0]);
    expect(samplesOf(after, "agentgpt_rpc_breaker_state", { chain: "local", stage: "reconciler" }).map((s) => s.value)).to.deep.equal([0]);
    expect(total(after, "agentgpt_reconciler_disputes_open", { chain: "local" })).to.equal(0);
    expect(total(after, "agentgpt_reconciler_passes_total", { chain: "local", outcome: "ok" })).to.be.greaterThan(0);
    expect(total(after, "agentgpt_reconciler_passes_total", { chain: "local", outcome: "failed" })).to.equal(0);
    expect(total(after, "agentgpt_payout_releases_total", { chain: "local" })).to.equal(0); // the dispute window is open
    expect(total(after, "agentgpt_payout_batches_awaiting_release", { chain: "local" })).to.equal(total(after, "agentgpt_settler_batches_final_total", { chain: "local" }));
    // bounded labels: no batch id, receipt id or address in any label value
    for (const sample of after.samples) for (const value of Object.values(sample.labels)) expect(value, sample.name).to.not.match(/0x[0-9a-fA-F]{40}|[0-9a-f]{32}|ops-/);
  });

  it("a second process on the chain stands by, ready and saying so; below its balance floor it is not ready, and says why", async function () {
    const { setup } = env;
    const port = await freePort();
    const metricsPort = await freePort();
    const configB = join(setup.dir, "relayer-b.yaml");
    writeFileSync(
      configB,
      readFileSync(setup.configFile, "utf8")
        .replace(/^  port: \d+$/m, `  port: ${port}`)
        .replace(/^settler:\n/m, "settler:\n  min_signer_balance: 1000000000\n")
        .concat(`metrics:\n  listen: 127.0.0.1:${metricsPort}\n`),
    );
    await env.spawn({ setup: { ...setup, configFile: configB, port, url: `http://127.0.0.1:${port}` }, env: backfillEnv });
    const listener = `http://127.0.0.1:${metricsPort}`;

    const answer = await until("the standby reports", async () => {
      const reply = await readyz(listener);
      return reply.body.stages["settler:local"]?.checks["balance"] !== undefined ? reply : undefined;
    });
    expect(answer.status).to.equal(503);
    expect(answer.body.error).to.equal("not_ready");
    const settler = answer.body.stages["settler:local"]!;
    expect(settler.standby).to.equal(true);
    expect(settler.checks["lease"]).to.deep.include({ ok: true, standby: true });
    expect(settler.checks["lease"]!.detail).to.match(/^standby: another process holds the settler lease of this chain/);
    expect(settler.checks["balance"]!.ok).to.equal(false);
    expect(answer.body.reason).to.match(/settler:local balance: the signer 0x[0-9a-fA-F]{40} holds [\d.]+, not above settler\.min_signer_balance 1000000000: fund it/);
    // only the balance failed: every other stage and check is fine
    const failing = Object.entries(answer.body.stages).flatMap(([stage, report]) => Object.entries(report.checks).filter(([, c]) => !c.ok).map(([name]) => `${stage} ${name}`));
    expect(failing).to.deep.equal(["settler:local balance"]);
    // ingest's server answers the same
    expect((await readyz(`http://127.0.0.1:${port}`)).body.stages["settler:local"]!.standby).to.equal(true);
    expect((await fetch(`${listener}/healthz`)).status).to.equal(200);

    const metrics = await scrape(listener);
    expect(samplesOf(metrics, "agentgpt_lease_held", { stage: "settler", chain: "local" })[0]!.value).to.equal(0);
    expect(total(metrics, "agentgpt_settler_receipts_pending", { chain: "local" })).to.equal(0);
    const first = await scrape(setup.url);
    expect(samplesOf(first, "agentgpt_lease_held", { stage: "settler", chain: "local" })[0]!.value).to.equal(1);
  });
});
