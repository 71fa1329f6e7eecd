/**
 * The monitor and the dashboard on one known history (test/relayer/monitor/scenario.ts): the real relayer process
 * with a `hardhat node` and Redis, disputes and rejections on-chain, calls pending for a chain without RPC.
 * Every expected figure is computed here from the calls sent (and cross-checked with the chain's views), then
 * compared with `agentgpt monitor litellm` (a process), the dashboard's JSON API, and the page in headless Chromium.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { chromium, type BrowserContext } from "playwright-core";

import { formatMilli, formatUnits } from "../../relayer/monitor/format-amount.js";
import { usageDate } from "../../relayer/monitor/usage-report.js";
import { dropPrefix, testRedis } from "../helpers/redis.js";
import { DISPUTE_BOND, GPT4_BUDGET, MODELS, PAYER1_CAP, startScenario, units, type Call, type Model, type Scenario } from "../relayer/monitor/scenario.js";

const REPO = process.cwd();
const ARTIFACTS = join(REPO, "test-artifacts");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agentgpt(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/agentgpt.mjs", ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** GET over a socket bound to `localAddress` (so the server sees that remote address), with extra headers. */
function getFrom(localAddress: string, url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { localAddress, headers }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A non-loopback address of this machine (IPv4 first), or undefined. */
function externalAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const external = all.filter((entry) => !entry.internal && !entry.address.startsWith("fe80"));
  return (external.find((entry) => entry.family === "IPv4") ?? external[0])?.address;
}

const u = (value: bigint) => formatUnits(value, 18);
const mean = (calls: readonly Call[]) => `${Math.round(calls.reduce((sum, c) => sum + c.latencyMs, 0) / calls.length)}ms`;

describe("e2e: agentgpt monitor litellm and the dashboard, on a known history", function () {
  this.timeout(180_000);
  let s: Scenario;
  let expected: ReturnType<typeof expectations>;
  let headTime: number;

  function pick(filter: (call: Call) => boolean): Call[] {
    return s.calls.filter(filter);
  }

  /** Every figure, from the calls sent and what the scenario did to them. */
  function expectations() {
    const of = (payers: number[], model: Model) => pick((c) => payers.includes(c.payer) && c.model === model);
    const openaiSettled = of([1, 2], "gpt-4-turbo");
    const groqSettled = of([0, 1, 2], "mixtral-8x22b");
    const refund = s.resolvedDispute.refund;
    const claude = of([0, 1], "claude-3-opus");
    const held = units(pick((c) => [1, 2].includes(c.payer) && MODELS[c.model].chain === "local"));
    return {
      openai: { requests: openaiSettled.length, amount: units(openaiSettled), latency: mean(openaiSettled) },
      groq: { requests: groqSettled.length, amount: units(groqSettled) - refund, latency: mean(groqSettled) },
      total: { requests: openaiSettled.length + groqSettled.length, amount: units(openaiSettled) + units(groqSettled) - refund },
      totalLatency: mean([...openaiSettled, ...groqSettled]),
      inDispute: units(of([0], "gpt-4-turbo")),
      rejected: { openai: units(of([3], "gpt-4-turbo")), groq: units(of([3], "mixtral-8x22b")) },
      refund,
      pending: { requests: claude.length, milli: claude.reduce((sum, c) => sum + c.milli, 0n) },
      escrow: {
        escrowed: units(pick((c) => [0, 1, 2].includes(c.payer) && MODELS[c.model].chain === "local")),
        held,
        released: 0n,
        inDispute: units(of([0], "gpt-4-turbo")),
        disputePaid: units(of([0], "mixtral-8x22b")) - refund,
        refunded: refund,
      },
      gpt4Left: GPT4_BUDGET - units(of([0, 1, 2], "gpt-4-turbo")),
      payer1Left: PAYER1_CAP - units(pick((c) => c.payer === 1 && MODELS[c.model].chain === "local")),
    };
  }

  before(async function () {
    s = await startScenario();
    expected = expectations();
    headTime = (await s.suite.provider.getBlock("latest"))!.timestamp;
    // The scenario's disputes are what the expectations assume.
    expect(s.openDispute.amount).to.equal(expected.inDispute);
    expect(s.resolvedDispute.amount).to.equal(units(pick((c) => c.payer === 0 && c.model === "mixtral-8x22b")));
  });

  after(async function () {
    if (s === undefined) return;
    if (this.currentTest?.state === "failed") process.stderr.write(`--- relayer logs ---\n${s.relayer.logs().slice(-6000)}\n`);
    await s.stop();
    const redis = testRedis();
    await dropPrefix(redis, s.prefix);
    redis.disconnect();
    rmSync(s.dir, { recursive: true, force: true });
  });

  it("the chain agrees with the figures computed from the calls", async function () {
    const router = s.suite.router;
    expect(await router.totalEscrow()).to.equal(expected.escrow.held + expected.escrow.inDispute);
    const [, , dailyLimit, spentToday] = await router.modelInfo(await router.modelId("gpt-4-turbo"));
    expect(dailyLimit - spentToday).to.equal(expected.gpt4Left);
    const [deposit, spent1] = await router.accountOf(s.suite.payers[1]!.address);
    expect(PAYER1_CAP - spent1).to.equal(expected.payer1Left);
    expect(deposit > expected.payer1Left).to.equal(true); // the cap, not the deposit, limits payer 1
    expect((await router.disputeInfo(s.openDispute.disputeId)).bond).to.equal(DISPUTE_BOND);
  });

  it("prints the seed's table by provider with exact settled figures, and what is not settled apart", async function () {
    const run = await agentgpt(["monitor", "litellm", "--config", s.configFile, "--granularity", "provider", "--since", "24h"]);
    expect(run.code, run.stderr).to.equal(0);
    const lines = run.stdout.split("\n");
    const cells = (key: string, from = 0) => {
      const line = lines.slice(from).find((l) => l.startsWith(`│ ${key} `));
      expect(line, `a row for ${key} in:\n${run.stdout}`).to.not.equal(undefined);
      return line!.split("│").slice(1, -1).map((cell) => cell.trim());
    };
    expect(lines[0]).to.equal(`LLM USAGE ${usageDate(headTime)}  (settled in the last 24h on local, polygon)`);
    expect(lines[1]).to.match(/^┌─+┬─+┬─+┬─+┐$/);
    expect(cells("Provider")).to.deep.equal(["Provider", "Requests", "AGPT Cost", "Latency"]);
    expect(cells("openai")).to.deep.equal(["openai", String(expected.openai.requests), u(expected.openai.amount), expected.openai.latency]);
    expect(cells("groq")).to.deep.equal(["groq", String(expected.groq.requests), u(expected.groq.amount), expected.groq.latency]);
    expect(cells("TOTAL")).to.deep.equal(["TOTAL", String(expected.total.requests), `${u(expected.total.amount)} AGPT`]);
    expect(lines.some((l) => l.startsWith("│ anthropic") && lines.indexOf(l) < lines.indexOf("Not in the cost above (AGPT):"))).to.equal(false);

    const apart = lines.indexOf("Not in the cost above (AGPT):");
    expect(apart).to.be.greaterThan(0);
    expect(cells("openai", apart)).to.deep.equal(["openai", "-", `${u(expected.inDispute)} · 1 row`, `${u(expected.rejected.openai)} · 1 row`, "-"]);
    expect(cells("groq", apart)).to.deep.equal(["groq", "-", "-", `${u(expected.rejected.groq)} · 1 row`, u(expected.refund)]);
    expect(cells("anthropic", apart)).to.deep.equal(["anthropic", `${formatMilli(expected.pending.milli, 18)} · ${expected.pending.requests} req`, "-", "-", "-"]);
    expect(run.stdout).to.include("Rejected rows by reason: OverDailyCap 2");
    expect(run.stdout).to.include("Unbillable calls kept by ingest (all payers): failed_call 1");
    expect(run.stdout).to.include("! chain polygon has no rpc_urls");
    expect(run.stdout).to.include(`Budget Remaining: ${u(expected.gpt4Left)} AGPT  (governed model budgets left today)`);
    expect(run.stdout).to.match(/\n {2}gpt-4-turbo +[\d.,]+ of 1,000 left\n/);
  });

  it("--json by route: the same figures as decimal strings of token units", async function () {
    const run = await agentgpt(["monitor", "litellm", "--config", s.configFile, "--granularity", "route", "--json"]);
    expect(run.code, run.stderr).to.equal(0);
    const report = JSON.parse(run.stdout);
    const byKey = Object.fromEntries(report.groups.map((g: any) => [g.key, g]));
    expect(Object.keys(byKey).sort()).to.deep.equal(["claude_fast", "cost_optimized", "mission_critical"]);
    expect(byKey.mission_critical.settled).to.deep.equal({
      requests: expected.openai.requests,
      amount: expected.openai.amount.toString(),
      latencyMsTotal: pick((c) => [1, 2].includes(c.payer) && c.model === "gpt-4-turbo").reduce((sum, c) => sum + c.latencyMs, 0),
    });
    expect(byKey.cost_optimized.settled.amount).to.equal(expected.groq.amount.toString());
    expect(byKey.cost_optimized.refunded).to.equal(expected.refund.toString());
    expect(byKey.mission_critical.inDispute).to.deep.equal({ rows: 1, requests: 3, amount: expected.inDispute.toString() });
    expect(byKey.claude_fast.pending).to.deep.equal({ requests: expected.pending.requests, amountMilli: expected.pending.milli.toString() });
    expect(report.total.rejected).to.deep.equal({
      rows: 2,
      requests: 6,
      amount: (expected.rejected.openai + expected.rejected.groq).toString(),
      reasons: { OverDailyCap: 2 },
    });
    expect(report.escrow).to.deep.equal(Object.fromEntries(Object.entries(expected.escrow).map(([k, v]) => [k, v.toString()])));
    expect(report.queue).to.include({ ingestRequests: expected.pending.requests, poolRequests: 0, batches: 0, complete: true });
    expect(report.budget.remaining).to.equal(expected.gpt4Left.toString());
  });

  it("--user: that payer's rows, and its room today under cap, deposit and allowance", async function () {
    const payer = s.suite.payers[1]!.address;
    const run = await agentgpt(["monitor", "litellm", "--config", s.configFile, "--user", payer.toLowerCase(), "--json"]);
    expect(run.code, run.stderr).to.equal(0);
    const report = JSON.parse(run.stdout);
    expect(report.user).to.equal(payer);
    const mine = (model: Model) => pick((c) => c.payer === 1 && c.model === model);
    const byKey = Object.fromEntries(report.groups.map((g: any) => [g.key, g]));
    expect(byKey.openai.settled.amount).to.equal(units(mine("gpt-4-turbo")).toString());
    expect(byKey.groq.settled.amount).to.equal(units(mine("mixtral-8x22b")).toString());
    expect(byKey.anthropic.pending.amountMilli).to.equal(mine("claude-3-opus").reduce((sum, c) => sum + c.milli, 0n).toString());
    expect(report.budget.kind).to.equal("user");
    expect(report.budget.remaining).to.equal(expected.payer1Left.toString());
    expect(report.budget.chains[0].budget.capLeft).to.equal(expected.payer1Left.toString());
  });

  it("refuses bad input with the option and its fix", async function () {
    const bad = await agentgpt(["monitor", "litellm", "--config", s.configFile, "--granularity", "cost"]);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.equal("agentgpt: --granularity cost: one of provider, model, user, route\n");
  });

  it("the page shows the API's figures (headless Chromium), loads nothing from elsewhere, and is saved as a screenshot", async function () {
    const api: any = await (await fetch(`${s.dashboardUrl}/api/report?granularity=provider`)).json();
    const group = (key: string) => api.report.groups.find((g: any) => g.key === key);
    // The API says what the calls say...
    expect(group("openai").settled.amount).to.equal(expected.openai.amount.toString());
    expect(group("groq").settled.amount).to.equal(expected.groq.amount.toString());
    expect(api.report.total.settled.amount).to.equal(expected.total.amount.toString());
    expect(api.links.explorers.local).to.equal("http://explorer.invalid/tx/{tx}");

    const profile = mkdtempSync(join(tmpdir(), "agentgpt-chromium-"));
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1400, height: 1000 },
      });
      const page = await context.newPage();
      const foreign: string[] = [];
      const errors: string[] = [];
      page.on("request", (request) => {
        if (!request.url().startsWith(`${s.dashboardUrl}/`) && !request.url().startsWith("data:")) foreign.push(request.url());
      });
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${s.dashboardUrl}/`);
      await page.waitForSelector('body[data-state="ready"]', { timeout: 20_000 });

      // ...and the page shows what the API says.
      const text = async (selector: string) => (await page.textContent(selector))?.trim();
      expect(await text("#date")).to.equal(`LLM USAGE ${api.report.date}`);
      for (const key of ["openai", "groq"]) {
        const g = group(key);
        expect(await text(`#usage tr[data-key="${key}"] td.requests`)).to.equal(String(g.settled.requests));
        expect(await text(`#usage tr[data-key="${key}"] td.cost`)).to.equal(u(BigInt(g.settled.amount)));
        expect(await text(`#usage tr[data-key="${key}"] td.latency`)).to.equal(expected[key as "openai" | "groq"].latency);
      }
      expect(await text('#usage tr[data-key="openai"] td.dispute')).to.equal(`${u(expected.inDispute)} · 1 row(s)`);
      expect(await text('#usage tr[data-key="groq"] td.refunded')).to.equal(u(expected.refund));
      expect(await text('#usage tr[data-key="anthropic"] td.pending')).to.equal(`${formatMilli(expected.pending.milli, 18)} · ${expected.pending.requests} req`);
      expect(await text('#usage tr[data-key="TOTAL"] td.cost')).to.equal(`${u(expected.total.amount)} AGPT`);
      expect(await text('#usage tr[data-key="TOTAL"] td.latency')).to.equal(expected.totalLatency);
      expect(await text('[data-figure="budget"] .value')).to.equal(`${u(expected.gpt4Left)} AGPT`);
      expect(await text('[data-figure="rejected"] .value')).to.equal(`${u(expected.rejected.openai + expected.rejected.groq)} AGPT`);
      for (const [key, value] of Object.entries(expected.escrow)) {
        const shown = await text(`#escrow dd[data-escrow="${key}"]`);
        expect(shown, key).to.equal(key === "escrowed" ? `${u(value)} AGPT` : u(value));
      }
      expect(await text('#queue dd[data-queue="ingestRequests"]')).to.equal(String(expected.pending.requests));
      expect(await text('#budgets tr[data-model="gpt-4-turbo"] td.left')).to.equal(u(expected.gpt4Left));
      const batch = `#batches tr[data-batch="${s.batchId}"]`;
      expect(await text(`${batch} td.state`)).to.equal("escrowed");
      expect(await text(`${batch} td.amount`)).to.equal(u(expected.escrow.escrowed));
      expect(await text(`${batch} td.rows`)).to.equal("6 / 2 rejected");
      const tx = api.report.batches[0].txHash as string;
      expect(await page.getAttribute(`${batch} a.tx`, "href")).to.equal(`http://explorer.invalid/tx/${tx}`);
      expect(await page.getAttribute(`${batch} a.cid`, "href")).to.equal(`http://ipfs.invalid/ipfs/${api.report.batches[0].cid}`);
      expect(await page.evaluate(() => typeof (globalThis as { Chart?: unknown }).Chart)).to.equal("function");

      // Another grouping, by the buttons.
      await page.click('#granularity button[data-granularity="route"]');
      await page.waitForSelector('#usage tr[data-key="mission_critical"]');
      expect(await text('#usage tr[data-key="mission_critical"] td.cost')).to.equal(u(expected.openai.amount));
      expect(await text('#usage tr[data-key="cost_optimized"] td.cost')).to.equal(u(expected.groq.amount));
      await page.click('#granularity button[data-granularity="provider"]');
      await page.waitForSelector('#usage tr[data-key="openai"]');

      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).to.be.greaterThan(10_000);
      expect(foreign, "requests to anything but the relayer").to.deep.equal([]);
      expect(errors).to.deep.equal([]);
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });

  it("refuses a client that is not on loopback, whatever its headers say; answers loopback", async function () {
    const address = externalAddress();
    if (address === undefined) this.skip(); // a machine with loopback only cannot make a remote client
    const port = s.dashboardPort;
    const host = address.includes(":") ? `[${address}]` : address;
    for (const path of ["/", "/api/report", "/assets/app.js"]) {
      const remote = await getFrom(address, `http://${host}:${port}${path}`, { "x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1", forwarded: "for=127.0.0.1" });
      expect(remote.status, path).to.equal(403);
      expect(JSON.parse(remote.body).error).to.equal("forbidden");
      expect(remote.body).to.not.include(expected.total.amount.toString());
    }
    const spoofedHost = await getFrom(address, `http://${host}:${port}/api/report`, { host: `127.0.0.1:${port}` });
    expect(spoofedHost.status).to.equal(403);
    const local = await getFrom("127.0.0.1", `http://127.0.0.1:${port}/api/report`);
    expect(local.status).to.equal(200);
    // Loopback without a token still needs a loopback Host (a DNS name rebound to 127.0.0.1 is refused).
    const rebound = await getFrom("127.0.0.1", `http://127.0.0.1:${port}/api/report`, { host: `attacker.example:${port}` });
    expect(rebound.status).to.equal(403);
    const post = await fetch(`${s.dashboardUrl}/api/report`, { method: "POST" });
    expect(post.status).to.equal(405);
  });

  it("after the dispute window, a release moves the held escrow to released", async function () {
    await s.node.rpc("evm_increaseTime", [3601]);
    await s.node.rpc("evm_mine", []);
    await (await s.suite.router.release(s.batchId)).wait();
    let report: any;
    for (let i = 0; i < 50; i++) {
      report = ((await (await fetch(`${s.dashboardUrl}/api/report`)).json()) as any).report;
      if (report.escrow.released !== "0") break;
      await new Promise((r) => setTimeout(r, 200)); // the dashboard reads the chain again after `refresh` (1 s)
    }
    expect(report.escrow).to.deep.equal({
      ...Object.fromEntries(Object.entries(expected.escrow).map(([k, v]) => [k, v.toString()])),
      held: "0",
      released: expected.escrow.held.toString(),
    });
    expect(report.batches[0].state).to.equal("released");
    expect(report.total.settled.amount).to.equal(expected.total.amount.toString()); // releasing changes no cost
  });
});
