/**
 * `agentgpt demo` as a person runs it: the real command (bin/agentgpt.mjs) as a child process, its output captured,
 * on this machine's Redis and a `hardhat node` it starts itself. Checked: every step's progress line, the money in
 * its --json summary and in the printed monitor table (payers charged exactly what providers withdrew, the escrow
 * that plus the refund less the lost bond, nothing left in escrow, the router solvent; the second bill refunded to
 * the unit, the honest dispute's bond paid to the provider), and that nothing it started is left behind: no node process
 * or port, no Redis key under its prefix, no temporary directory; on success, with Redis missing, and on Ctrl-C.
 * With --rpc the chain outlives the demo, so its balances are read back and compared with the summary.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";

import { expect } from "chai";
import { JsonRpcProvider, parseUnits } from "ethers";
import { Redis } from "ioredis";

import type { DemoSummary } from "../../relayer/demo/run-demo.js";
import { AGPTToken__factory } from "../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { REPO } from "../deploy/local-node.js";
import { freePort, startHardhatNode, type HardhatNode } from "../helpers/hardhat-node.js";
import { REDIS_URL } from "../helpers/redis.js";

const STEPS = [
  "connecting to Redis",
  "starting a local chain \\(hardhat node\\)",
  "deploying the suite",
  "funding the demo payers",
  "starting the relayer \\(ingest, batcher, settler with its release stage, reconciler\\)",
  "replaying \\d+ LiteLLM calls over HTTP \\(generic API logger POSTs\\)",
  "batching and settling on-chain",
  "support-bot disputes an honest interval \\(every settled row of it\\)",
  "the same calls billed twice: the reconciler disputes the interval, the oracle refunds the second bill",
  "past the dispute window: the release stage releases, providers withdraw",
  "agentgpt monitor litellm --granularity provider",
];

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `agentgpt demo <args>`; `whenLine` may act on the child (e.g. send SIGINT) when a stdout line matches. */
function demo(args: string[], options: { env?: Record<string, string>; whenLine?: { match: RegExp; then: (child: ReturnType<typeof spawn>) => void } } = {}): Promise<DemoRun> {
  const started = Date.now();
  const child = spawn(process.execPath, ["bin/agentgpt.mjs", "demo", ...args], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let stdout = "";
  let stderr = "";
  let acted = false;
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!acted && options.whenLine !== undefined && options.whenLine.match.test(stdout)) {
      acted = true;
      options.whenLine.then(child);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    // the demo promises to finish in under 2 minutes once built; a hang is killed and fails the test
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

function explain(run: DemoRun): string {
  return `exit ${run.code ?? run.signal} after ${run.ms} ms\n--- stdout ---\n${run.stdout.slice(-6000)}\n--- stderr ---\n${run.stderr.slice(-3000)}`;
}

/** What the demo says it uses: its temporary directory, Redis prefix and (when it started one) node URL. */
function resources(stdout: string): { tempDir?: string; prefix?: string; nodeUrl?: string } {
  return {
    tempDir: /working in (\S+) /.exec(stdout)?.[1],
    prefix: /demo keys under "([^"]+)"/.exec(stdout)?.[1],
    nodeUrl: /started (http:\/\/127\.0\.0\.1:\d+) \(chain/.exec(stdout)?.[1],
  };
}

async function redisKeys(prefix: string): Promise<string[]> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== "0");
    return found;
  } finally {
    redis.disconnect();
  }
}

/** Command lines of this machine's processes that mention `text`. */
function processesWith(text: string): string[] {
  return execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(text) && !line.includes("ps -eo"));
}

async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { method: "POST", body: "{}", signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

/** Nothing the demo started survives it. */
async function expectNothingLeft(used: { tempDir?: string | undefined; prefix?: string | undefined; nodeUrl?: string | undefined }): Promise<void> {
  if (used.tempDir !== undefined) expect(existsSync(used.tempDir), `temporary directory ${used.tempDir} left behind`).to.equal(false);
  if (used.prefix !== undefined) expect(await redisKeys(used.prefix), `Redis keys under ${used.prefix} left behind`).to.deep.equal([]);
  if (used.nodeUrl !== undefined) {
    const port = new URL(used.nodeUrl).port;
    expect(processesWith(`--port ${port}`).filter((line) => line.includes("hardhat")), "hardhat node process left running").to.deep.equal([]);
    expect(await answers(used.nodeUrl), `something still answers at ${used.nodeUrl}`).to.equal(false);
  }
}

/** Every progress line, in order. */
function expectSteps(stdout: string, count = STEPS.length): void {
  let from = 0;
  for (const [i, title] of STEPS.slice(0, count).entries()) {
    const match = new RegExp(`\\[ ?${i + 1}/11\\] ${title} \\.\\.\\.`).exec(stdout.slice(from));
    expect(match, `progress line of step ${i + 1} (${title})`).to.not.equal(null);
    from += match!.index + match![0].length;
  }
}

const sum = (values: Iterable<bigint>) => [...values].reduce((a, b) => a + b, 0n);
const units = (text: string) => parseUnits(text.replace(/,/g, ""), 18);

/** The money in the summary adds up, to the unit. */
function expectMoneyAddsUp(summary: DemoSummary): void {
  const payers = Object.entries(summary.payers);
  const charged = sum(payers.map(([, p]) => BigInt(p.charged)));
  const withdrawn = sum(Object.values(summary.providers).map((p) => BigInt(p.withdrawn)));
  const { overcharge, honest } = summary.disputes;
  const refund = BigInt(overcharge.refund);
  const lostBond = BigInt(honest.bond);

  // every payer's charge is what left its deposit
  for (const [alias, payer] of payers) expect(BigInt(payer.deposited) - BigInt(payer.balance), alias).to.equal(BigInt(payer.charged));
  // payers paid exactly what providers withdrew (the lost bond included); the escrow of every batch was that plus
  // the refund less the bond; nothing is still escrowed
  expect(charged > 0n).to.equal(true);
  expect(charged).to.equal(withdrawn);
  expect(BigInt(summary.escrowed)).to.equal(withdrawn + refund - lostBond);
  expect(summary.escrowLeft).to.equal("0");
  // solvent: the router holds exactly what it owes, which is the payers' remaining deposits (no bond left open)
  expect(summary.routerBalance).to.equal(summary.liabilities);
  expect(BigInt(summary.routerBalance)).to.equal(sum(payers.map(([, p]) => BigInt(p.balance))));
  // the overcharge: the second batch's bill of the interval refunded to the unit, the bond returned, the first bill
  // named (released) and kept
  expect(summary.batches).to.be.at.least(2);
  expect(overcharge.payer).to.equal("research-agents");
  expect([overcharge.provider, overcharge.model]).to.deep.equal(["openai", "gpt-4-turbo"]);
  expect(overcharge.refund).to.equal(overcharge.plantedAmount);
  expect(overcharge.overbilledTokens).to.equal(overcharge.plantedTokens);
  expect(overcharge.heldAmount).to.equal(overcharge.plantedAmount);
  expect(BigInt(overcharge.billedTokens) - BigInt(overcharge.reportedTokens)).to.equal(BigInt(overcharge.plantedTokens ?? "-1"));
  expect(overcharge.rows).to.be.at.least(2);
  expect(overcharge.bondReturned).to.equal(true);
  expect(refund > 0n).to.equal(true);
  // the honest interval: the provider reports every billed token, nothing refunded, the bond paid to the provider
  expect(honest.payer).to.equal("support-bot");
  expect(honest.reportedTokens).to.equal(honest.billedTokens);
  expect([honest.overbilledTokens, honest.refund, honest.bondReturned]).to.deep.equal(["0", "0", false]);
  expect(lostBond).to.equal(10n ** 18n / 2n);
  // the payer whose deposit was too small: its rows rejected on-chain, nothing charged
  expect(summary.payers["batch-jobs"]!.charged).to.equal("0");
  expect(summary.rejectedRows).to.equal(3);
  expect(BigInt(summary.payers["research-agents"]!.charged) > 0n).to.equal(true);
}

/** The printed monitor table says the same: cost = withdrawn less the bond the providers won (a bond is no usage), refunded = the refund. */
function expectTableMatches(stdout: string, summary: DemoSummary): void {
  const totals = stdout.split("\n").filter((line) => line.startsWith("│ TOTAL"));
  expect(totals, "the monitor table's two TOTAL lines").to.have.length(2);
  const cost = totals[0]!.split("│").map((cell) => cell.trim());
  expect(cost[3]).to.match(/ AGPT$/);
  const bondWon = summary.disputes.honest.bondReturned ? 0n : BigInt(summary.disputes.honest.bond);
  expect(units(cost[3]!.replace(/ AGPT$/, ""))).to.equal(sum(Object.values(summary.providers).map((p) => BigInt(p.withdrawn))) - bondWon);
  const apart = totals[1]!.split("│").map((cell) => cell.trim());
  expect(units(apart[5]!)).to.equal(BigInt(summary.disputes.overcharge.refund));
  // released by the relayer's release stage, withdrawn with `agentgpt provider withdraw`'s code, shown by the monitor
  expect(stdout).to.match(/the relayer's release stage released \d+ batch\(es\) within/);
  const withdrawn = /providers paid \(agentgpt provider withdraw\): (.+) \(\d/.exec(stdout)?.[1] ?? "";
  for (const [name, provider] of Object.entries(summary.providers)) {
    const printed = new RegExp(`${name} ([\\d,.]+) AGPT`).exec(withdrawn)?.[1];
    expect(printed, `withdrawn line names ${name}`).to.not.equal(undefined);
    expect(units(printed!)).to.equal(BigInt(provider.withdrawn));
  }
  const payouts = stdout.split("\n").find((line) => line.startsWith("│ AGPT on local"));
  expect(payouts, "the monitor's Payouts row").to.not.equal(undefined);
  const [, , escrowed, releasable, released, paid] = payouts!.split("│").map((cell) => cell.trim());
  expect([escrowed, releasable, released]).to.deep.equal(["0", "0", "0"]);
  expect(units(paid!)).to.equal(sum(Object.values(summary.providers).map((p) => BigInt(p.withdrawn))));
}

function summaryOf(run: DemoRun): DemoSummary {
  const last = run.stdout.trim().split("\n").at(-1)!;
  expect(last.startsWith("{"), "the --json summary is the last line").to.equal(true);
  return JSON.parse(last) as DemoSummary;
}

describe("e2e: agentgpt demo", function () {
  this.timeout(150_000);

  it("runs the whole flow with its own node: every step, money that adds up, nothing left behind", async function () {
    const run = await demo(["--json"]);
    expect(run.code, explain(run)).to.equal(0);
    expectSteps(run.stdout);
    expect(run.stdout).to.match(
      /checks: 5 payers charged exactly their accepted rows less refunds, plus the bond lost on the honest dispute; 3 providers paid exactly their rows less refunds, plus the bond won; solvent/,
    );
    expect(run.stdout).to.match(/done in [\d.]+ s; cleaned up/);
    const summary = summaryOf(run);
    expect(summary.chainId).to.equal(31337);
    expect(summary.calls).to.equal(600);
    expect(summary.queued + summary.unbillable).to.equal(600);
    expect(summary.unbillable).to.be.greaterThan(0); // rate-limited calls kept, not billed
    expect(summary.duplicates).to.equal(256); // the re-sent body
    expect(summary.batches).to.equal(2); // the traffic's, and the second bill
    expectMoneyAddsUp(summary);
    expectTableMatches(run.stdout, summary);
    expect(run.ms, "under 2 minutes").to.be.lessThan(120_000);

    const used = resources(run.stdout);
    expect(used.nodeUrl).to.equal(summary.nodeUrl);
    expect(used.prefix).to.equal(summary.redisPrefix);
    expect(used.tempDir).to.equal(summary.tempDir);
    await expectNothingLeft(used);
  });

  describe("with --rpc", function () {
    let node: HardhatNode;
    before(async function () {
      node = await startHardhatNode();
    });
    after(async function () {
      await node?.stop();
    });

    it("leaves the node running, and its chain holds what the summary says", async function () {
      const run = await demo(["--rpc", node.url, "--calls", "200", "--json"]);
      expect(run.code, explain(run)).to.equal(0);
      expect(run.stdout).to.contain(`using ${node.url} (chain 31337)`);
      const summary = summaryOf(run);
      expectMoneyAddsUp(summary);

      const provider = new JsonRpcProvider(node.url, 31337, { staticNetwork: true });
      try {
        const router = AutoPayLLM__factory.connect(summary.router, provider);
        const token = AGPTToken__factory.connect(summary.token, provider);
        for (const [alias, payer] of Object.entries(summary.payers)) expect(await router.balanceOf(payer.address), alias).to.equal(BigInt(payer.balance));
        for (const [name, payee] of Object.entries(summary.providers)) {
          expect(await token.balanceOf(payee.payee), name).to.equal(BigInt(payee.withdrawn));
          expect(await router.credits(await router.providerId(name)), `${name} credits`).to.equal(0n);
        }
        expect(await router.totalEscrow()).to.equal(0n);
        expect(await token.balanceOf(summary.router)).to.equal(BigInt(summary.routerBalance));
        for (const dispute of [summary.disputes.overcharge, summary.disputes.honest]) {
          const info = await router.disputeInfo(dispute.disputeId);
          expect(Number(info.status), "the dispute is resolved").to.equal(2);
          expect(info.refund).to.equal(BigInt(dispute.refund));
        }
      } finally {
        provider.destroy();
      }
      await expectNothingLeft({ tempDir: summary.tempDir, prefix: summary.redisPrefix });
    });
  });

  it("without Redis: exits 3 naming REDIS_URL and how to start one, and leaves nothing behind", async function () {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const run = await demo([], { env: { REDIS_URL: closed } });
    expect(run.code, explain(run)).to.equal(3);
    expect(run.stderr).to.contain(`agentgpt: REDIS_URL: no Redis answers at ${closed}`);
    expect(run.stderr).to.contain("redis-server");
    expect(run.stdout).to.contain("cleaned up after the failure");
    expectSteps(run.stdout, 1);
    expect(run.stdout).to.not.contain("[ 2/11]");
    await expectNothingLeft(resources(run.stdout));
  });

  it("on Ctrl-C while settling: stops, cleans up everything it started and exits 130", async function () {
    const run = await demo([], { whenLine: { match: /\[ 7\/11\]/, then: (child) => child.kill("SIGINT") } });
    expect(run.code, explain(run)).to.equal(130);
    expect(run.stdout).to.match(/SIGINT: stopping and cleaning up \.\.\.\ncleaned up\n/);
    expect(run.stdout).to.not.contain("[ 8/11]");
    const used = resources(run.stdout);
    expect(used.nodeUrl, "the demo had started its node").to.not.equal(undefined);
    await expectNothingLeft(used);
  });

  it("refuses a bad --calls value, naming the option and the range", async function () {
    const run = await demo(["--calls", "ten"]);
    expect(run.code, explain(run)).to.equal(2);
    expect(run.stderr).to.contain('agentgpt: --calls "ten": give a whole number of LiteLLM calls from 50 to 20000');
    expect(run.stdout).to.equal("");
  });
});
