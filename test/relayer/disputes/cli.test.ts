/**
 * `agentgpt dispute` and `agentgpt reconcile` as processes against a real `hardhat node`: two batches of the same
 * usage bucket settled by the Batcher and Settler (the second bills payer A's openai/gpt-4-turbo calls again), a
 * usage API on 127.0.0.1, and a local DON running the Functions source against it. The reconciler compares the whole
 * interval with the provider's report and predicts the refund; the payer's dispute names every settled row of the
 * interval and gets exactly that refund; an honest interval costs its bond; a dispute nobody answers stays open
 * (`wait` exits 3), retries are spaced, governance gets its call, and after the governance deadline anyone settles
 * it as expired (the charge stands, the bond goes back). Bad input gets a message that names the field and the fix.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet } from "ethers";
import type { Redis } from "ioredis";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { formatTokenAmount } from "../../../relayer/config/amount.js";
import type { SettlementRecord } from "../../../relayer/settler/settlement-store.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { LocalDon, advance, deployOracle, fundGas, settleReceipts, writeDeployments, type OracleDeployment } from "../../helpers/dispute-chain.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { USAGE_API_KEY } from "../../helpers/oracle.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { UsageServer } from "../../oracle/usage-server.js";
import { REPO } from "../../deploy/local-node.js";

const CHAIN = "local";
const BOND = AGPT;
const UNIT = { symbol: "AGPT", decimals: 18 };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agentgpt(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, "bin", "agentgpt.mjs"), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const refused = (run: Run, code = 2) => {
  expect(run.code, run.stdout + run.stderr).to.equal(code);
  return run.stderr;
};

describe("agentgpt dispute / reconcile over intervals (CLI against a hardhat node)", function () {
  this.timeout(240_000);
  let node: HardhatNode;
  let redis: Redis;
  let usage: UsageServer;
  let suite: ChainSuite;
  let deployed: OracleDeployment;
  let don: LocalDon;
  let prefix: string;
  let archiveDir: string;
  let deploymentsDir: string;
  let first: SettlementRecord;
  let second: SettlementRecord;
  let callsFrom: number;
  let env: Record<string, string>;
  let a: Wallet, b: Wallet, c: Wallet;
  const rows: Record<string, number> = {};
  let predictedRefund: bigint;

  before(async function () {
    [node, usage] = await Promise.all([startHardhatNode(), new UsageServer(USAGE_API_KEY).start()]);
    redis = testRedis();
    prefix = uniquePrefix("dsp");
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-dsp-"));
    deploymentsDir = await mkdtemp(join(tmpdir(), "agentgpt-dsp-deploy-"));
    suite = await deployChainSuite(node.url);
    deployed = await deployOracle(suite, usage.url, { verifier: true });
    await (await suite.router.setDisputeBond(BOND)).wait();
    await writeDeployments(deploymentsDir, suite, deployed.oracleAddress);
    [a, b, c] = suite.payers as [Wallet, Wallet, Wallet];
    await fundGas(suite.provider, [a.address, b.address, c.address]);
    const bucket = Number(await suite.router.usageBucket());
    const now = (await suite.provider.getBlock("latest"))!.timestamp;
    callsFrom = now - (now % bucket);
    const startTime = (callsFrom + 10) * 1000; // every call of both batches started in this bucket
    const poor = Wallet.createRandom().address;
    first = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 30_000, { startTime }),
      receipt(a.address, "anthropic", "claude-3-opus", 6_000, { startTime }),
      receipt(b.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(c.address, "groq", "mixtral-8x22b", 8_000, { startTime }),
      receipt(poor, "openai", "gpt-4-turbo", 1_000, { startTime }),
    ]);
    // the same usage of A billed again (new receipt ids, so another receipts root)
    second = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [receipt(a.address, "openai", "gpt-4-turbo", 12_000, { startTime })]);
    const archive = new LocalArchive(archiveDir);
    for (const [name, record] of [["first", first], ["second", second]] as const) {
      for (const row of (await archive.read(CHAIN, record.batchId))!.rows) rows[`${name}|${row.user.toLowerCase()}|${row.providerName}`] = row.index;
    }
    rows.poor = (await archive.read(CHAIN, first.batchId))!.rows.find((r) => r.user.toLowerCase() === poor.toLowerCase())!.index;
    const at = callsFrom + 10;
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at, tokens: 30_000n });
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: b.address, at, tokens: 10_000n });
    usage.add({ provider: "anthropic", model: "claude-3-opus", payer: a.address, at, tokens: 6_000n });
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: c.address, at, tokens: 8_000n });
    env = { LOCALHOST_RPC_URL: node.url, AGENTGPT_DEPLOYMENTS_DIR: deploymentsDir, AGENTGPT_PRIVATE_KEY: a.privateKey, TEST_USAGE_KEY: USAGE_API_KEY };
    don = new LocalDon(suite.provider, deployed.functionsRouter);
    don.start(150);
  });

  after(async function () {
    await don?.stop();
    await node?.stop();
    await usage?.stop();
    await dropPrefix(redis, prefix);
    redis?.disconnect();
    for (const dir of [archiveDir, deploymentsDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  const row = (batch: "first" | "second", payer: Wallet, provider: string) => String(rows[`${batch}|${payer.address.toLowerCase()}|${provider}`]);
  const chargeOf = async (record: SettlementRecord, index: string) => {
    const file = (await new LocalArchive(archiveDir).read(CHAIN, record.batchId))!;
    return BigInt(file.rows[Number(index)]!.amount);
  };

  it("reconciles every interval the epoch bills, all batches of its bucket together, and predicts the dispute's refund", async function () {
    const settledAt = Number((await suite.router.batchInfo(first.batchId)).settledAt);
    const settledLast = Number((await suite.router.batchInfo(second.batchId)).settledAt);
    const epoch = `${settledAt - 5}/${settledLast + 5}`;
    const configFile = join(archiveDir, "relayer.yaml");
    const config = (extra: string[]) =>
      [
        `include: [${join(REPO, "config", "litellm-router.yaml")}]`,
        `redis: { prefix: ${prefix} }`,
        `chains: { ${CHAIN}: { chain_id: 31337, rpc_urls: ["${node.url}"] } }`,
        `archive: { dir: ${archiveDir} }`,
        "reconciler:",
        ...extra,
        "  providers:",
        ...["openai", "anthropic", "groq"].map((name) => `    ${name}: { url: "${usage.url}", api_key_env: TEST_USAGE_KEY }`),
        "",
      ].join("\n");
    await writeFile(configFile, config([]));
    const obsoleteFile = join(archiveDir, "obsolete.yaml");
    await writeFile(obsoleteFile, config(["  usage_lookback: 1h"]));
    const [table, json, obsolete] = await Promise.all([
      agentgpt(["reconcile", "--epoch", epoch, "--archive", archiveDir, "--usage-url", usage.url, "--usage-key-env", "TEST_USAGE_KEY"], env),
      agentgpt(["reconcile", "--epoch", epoch, "--config", configFile, "--json"], env),
      agentgpt(["reconcile", "--epoch", epoch, "--config", obsoleteFile], env),
    ]);
    expect(table.code, table.stderr).to.equal(0);
    // openai: A's interval (30,000 + 12,000 billed, 30,000 reported) and B's (10,000 and 10,000)
    expect(table.stdout).to.match(/openai\s+2\s+3\s+52000\s+.*\s+52000\s+.*\s+40000\s+\+12000\s+\+23\.07%\s+1\s/);
    expect(table.stdout).to.match(/groq\s+1\s+1\s+8000\s+.*\s+ok$/m);
    expect(table.stdout).to.contain(
      `agentgpt dispute --payer ${a.address} --provider openai --model gpt-4-turbo --calls-from ${callsFrom}   # 2 row(s), refund`,
    );
    expect(json.code, json.stderr).to.equal(0);
    const report = JSON.parse(json.stdout) as {
      batches: { batchId: string; callsFrom: number; rejected: [number, string][] }[];
      intervals: { payer: string; provider: string; callsFrom: number; rows: unknown[]; billedTokens: string; heldAmount: string; reported: string; predictedOverbilled: string; predictedRefund: string; status: string }[];
    };
    expect(report.batches.map((x) => x.batchId)).to.deep.equal([first.batchId, second.batchId]);
    expect(report.batches.map((x) => x.callsFrom)).to.deep.equal([callsFrom, callsFrom]);
    expect(report.batches[0]!.rejected).to.deep.equal([[rows.poor, "InsufficientFunds"]]);
    const interval = report.intervals.find((i) => i.payer === a.address && i.provider === "openai")!;
    const held = (await chargeOf(first, row("first", a, "openai"))) + (await chargeOf(second, row("second", a, "openai")));
    predictedRefund = (held * 12_000n) / 42_000n;
    expect(interval).to.include({ callsFrom, billedTokens: "42000", heldAmount: held.toString(), reported: "30000", predictedOverbilled: "12000", status: "overcharged" });
    expect(interval.predictedRefund).to.equal(predictedRefund.toString());
    expect(interval.rows).to.have.length(2);
    expect(report.intervals.find((i) => i.payer === b.address)).to.include({ status: "ok", predictedRefund: "0" });
    expect(refused(obsolete)).to.contain("reconciler.usage_lookback is obsolete: usage is compared over the usage bucket each batch commits on-chain");
  });

  it("disputes the interval of a row, naming every settled row of it, and gets exactly the predicted refund", async function () {
    const before = await suite.router.balanceOf(a.address);
    const run = await agentgpt(["dispute", "--batch", second.batchId, "--row", row("second", a, "openai"), "--reason", "billed twice", "--timeout", "60s"], env);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.contain(`payer ${a.address} ($AGENTGPT_PRIVATE_KEY)`);
    expect(run.stdout).to.contain(`Interval: ${a.address} on openai/gpt-4-turbo, calls started in [${new Date(callsFrom * 1000).toISOString()}`);
    expect(run.stdout).to.contain(`  batch ${first.batchId} row ${row("first", a, "openai")}: 30000 tokens`);
    expect(run.stdout).to.contain(`  batch ${second.batchId} row ${row("second", a, "openai")}: 12000 tokens`);
    expect(run.stdout).to.contain("Billed 42000 tokens; held 42000 tokens");
    expect(run.stdout).to.match(/Dispute 0x[0-9a-f]{64} opened in 0x[0-9a-f]{64} \(block \d+\): 2 rows named, 2 held; bond 1 AGPT posted\./);
    expect(run.stdout).to.match(/The router's verifier asked the oracle \(request 0x[0-9a-f]{64}\)\./);
    expect(run.stdout).to.contain("provider reports 30000 tokens against 42000 billed: 12000 tokens overbilled");
    expect(run.stdout).to.contain(`refund ${formatTokenAmount(predictedRefund, UNIT)} to the payer`);
    expect(run.stdout).to.contain("bond returned to the payer");
    expect(run.stdout + run.stderr).to.not.contain(a.privateKey.slice(2));
    expect(await suite.router.balanceOf(a.address)).to.equal(before + predictedRefund);

    // status by a row it held
    const status = await agentgpt(["dispute", "status", "--batch", first.batchId, "--row", row("first", a, "openai")], env);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/Dispute 0x[0-9a-f]{64}: RESOLVED/);
    expect(status.stdout).to.contain("billed     42000 tokens over 2 settled rows");
    expect(status.stdout).to.contain(`closed     by ${deployed.oracleAddress}`);
  });

  it("an honest interval disputed by --payer/--provider/--model/--calls-from costs the payer its bond; wait follows it", async function () {
    const envB = { ...env, AGENTGPT_PRIVATE_KEY: b.privateKey };
    const before = await suite.router.balanceOf(b.address);
    const iso = new Date(callsFrom * 1000).toISOString();
    const opened = await agentgpt(["dispute", "--payer", b.address, "--provider", "openai", "--model", "gpt-4-turbo", "--calls-from", iso, "--no-wait"], envB);
    expect(opened.code, opened.stdout + opened.stderr).to.equal(0);
    const id = /Dispute (0x[0-9a-f]{64}) opened/.exec(opened.stdout)![1]!;
    expect(opened.stdout).to.contain(`Follow it with: agentgpt dispute status --id ${id}`);
    const waited = await agentgpt(["dispute", "wait", "--id", id, "--timeout", "60s"], env);
    expect(waited.code, waited.stdout + waited.stderr).to.equal(0);
    expect(waited.stdout).to.contain("provider reports 10000 tokens against 10000 billed: 0 tokens overbilled");
    expect(waited.stdout).to.contain("bond paid to the provider");
    expect(await suite.router.balanceOf(b.address)).to.equal(before - BOND);
  });

  it("refuses bad input with the field and the fix; covers a short bond only when asked", async function () {
    const envC = { ...env, AGENTGPT_PRIVATE_KEY: c.privateKey };
    const batch = first.batchId;
    // two groups: each command is a Node process on a small CI machine
    const [badBatch, badRow, mixed, badId, badEpoch] = await Promise.all([
      agentgpt(["dispute", "--batch", "0x1234", "--row", "0"], env),
      agentgpt(["dispute", "--batch", batch, "--row", "first"], env),
      agentgpt(["dispute", "--batch", batch, "--row", "0", "--payer", a.address], env),
      agentgpt(["dispute", "status", "--id", "0xdead"], env),
      agentgpt(["reconcile", "--epoch", "last tuesday"], env),
    ]);
    const [rejected, unaligned, notPayer, unknown, dryRun] = await Promise.all([
      agentgpt(["dispute", "--batch", batch, "--row", String(rows.poor)], env),
      agentgpt(["dispute", "--payer", c.address, "--provider", "groq", "--model", "mixtral-8x22b", "--calls-from", String(callsFrom + 1)], envC),
      agentgpt(["dispute", "--batch", batch, "--row", row("first", a, "anthropic"), "--no-wait"], envC),
      agentgpt(["dispute", "--batch", `0x${"ab".repeat(32)}`, "--row", "0"], env),
      agentgpt(["dispute", "--batch", batch, "--row", row("first", c, "groq"), "--dry-run"], { ...env, AGENTGPT_PRIVATE_KEY: "" }),
    ]);
    expect(refused(badBatch)).to.contain('--batch "0x1234": a batch id is 0x and 64 hex digits');
    expect(refused(badRow)).to.contain('--row "first": a row index is a whole number from 0');
    expect(refused(rejected)).to.contain(`--row ${rows.poor}: the contract rejected this row (InsufficientFunds) and charged nothing for it`);
    expect(refused(mixed)).to.contain("name the interval either by a settled row (--batch and --row) or by --payer, --provider, --model and --calls-from");
    expect(refused(unaligned)).to.contain(`--calls-from ${callsFrom + 1}: not the start of a usage bucket (the router's buckets are 3600 s; try ${callsFrom})`);
    expect(refused(badId)).to.contain('--id "0xdead": a dispute id is 0x and 64 hex digits');
    expect(refused(notPayer)).to.contain(`only the payer ${a.address} may dispute its usage; the signer is ${c.address}: sign with the payer's key`);
    expect(refused(unknown)).to.contain(`batch 0x${"ab".repeat(32)} is not settled on chain 31337`);
    expect(refused(badEpoch)).to.contain('--epoch "last tuesday": write a UTC day "2025-06-01"');
    expect(dryRun.code, dryRun.stdout + dryRun.stderr).to.equal(0);
    expect(dryRun.stdout).to.match(/Dry run: nothing sent\. The dispute would get id 0x[0-9a-f]{64}\./);

    // A empties its deposit: the bond must come from its wallet by allowance.
    const deposit = await suite.router.balanceOf(a.address);
    await (await suite.router.connect(a.connect(suite.provider)).withdraw(deposit)).wait();
    const args = ["dispute", "--batch", batch, "--row", row("first", a, "anthropic"), "--no-wait"];
    const short = await agentgpt(args, env);
    expect(refused(short)).to.contain("the bond is 1 AGPT: the deposit holds 0 AGPT, so 1 AGPT must come from the wallet");
    expect(short.stderr).to.contain("approve the router for 1 AGPT (pass --approve-bond)");
    const approved = await agentgpt([...args, "--approve-bond"], env);
    expect(approved.code, approved.stdout + approved.stderr).to.equal(0);
    expect(approved.stdout).to.match(/Approved the router for the bond's shortfall in 0x[0-9a-f]{64}\./);
    expect(approved.stdout).to.contain("1 rows named, 1 held; bond 1 AGPT posted.");
  });

  it("a dispute nobody answers: wait exits 3, retries are spaced, governance gets its call, then anyone settles it as expired", async function () {
    await don.stop(); // the DON is down: nothing answers the oracle's requests
    const envC = { ...env, AGENTGPT_PRIVATE_KEY: c.privateKey };
    const before = await suite.router.balanceOf(c.address);
    const open = ["dispute", "--payer", c.address, "--provider", "groq", "--model", "mixtral-8x22b", "--calls-from", String(callsFrom), "--no-wait"];
    // opened and waited for: still open at --timeout is exit 3, never 0
    const opened = await agentgpt([...open.slice(0, -1), "--timeout", "2s"], envC);
    const id = /Dispute (0x[0-9a-f]{64}) opened/.exec(opened.stdout)![1]!;
    expect(refused(opened, 3)).to.contain(`dispute ${id} is still open after 2 s; follow it with: agentgpt dispute status --id ${id}`);
    // waiting the whole timeout for a dispute that does not exist is no success either
    const missing = `0x${"cd".repeat(32)}`;
    const none = await agentgpt(["dispute", "wait", "--id", missing, "--timeout", "1s"], env);
    expect(refused(none, 2)).to.contain(`dispute ${missing} does not exist on this router (chain ${suite.chainId}): check --id and --chain`);
    const info = await suite.router.disputeInfo(id);
    expect(await suite.router.balanceOf(c.address)).to.equal(before - BOND);

    const [waited, again, verify, call, early] = await Promise.all([
      agentgpt(["dispute", "wait", "--id", id, "--timeout", "2s"], env),
      agentgpt(open, envC),
      agentgpt(["dispute", "verify", "--id", id, "--no-wait"], env),
      agentgpt(["dispute", "resolve-call", "--id", id, "--reported", "8000"], env),
      agentgpt(["dispute", "settle-expired", "--id", id], env),
    ]);
    expect(refused(waited, 3)).to.contain(`dispute ${id} is still open after 2 s`);
    expect(waited.stdout).to.contain(`Dispute ${id}: OPEN`);
    expect(refused(again)).to.contain(`this interval already has an open dispute ${id}: follow it with \`agentgpt dispute status --id ${id}\``);
    expect(refused(verify)).to.match(/a verification request \(0x[0-9a-f]{64}\) is still in flight; a retry is allowed from \d{4}-/);
    expect(call.code, call.stderr).to.equal(0);
    expect(call.stdout).to.contain(`function   resolveDispute(bytes32,uint128) with (${id}, 0)`);
    expect(call.stdout).to.contain(`calldata   ${suite.router.interface.encodeFunctionData("resolveDispute", [id, 0n])}`);
    expect(call.stdout).to.contain(`pays       refund 0 AGPT to the payer, ${formatTokenAmount(info.heldAmount, UNIT)} to the provider; bond to the provider`);
    expect(refused(early)).to.contain(`dispute ${id} may be settled as expired only from`);

    // past the governance deadline: anyone closes it; the charge stands and the bond goes back
    const now = (await suite.provider.getBlock("latest"))!.timestamp;
    await advance(suite.provider, Number(info.governanceDeadline) - now + 1);
    const settled = await agentgpt(["dispute", "settle-expired", "--id", id], env);
    expect(settled.code, settled.stdout + settled.stderr).to.equal(0);
    expect(settled.stdout).to.contain(`Dispute ${id}: EXPIRED`);
    expect(settled.stdout).to.contain("nobody judged it in time: the charge stands, the bond went back to the payer");
    expect(await suite.router.balanceOf(c.address)).to.equal(before);

    // every window is closed now: nothing of B's interval can be held
    const late = await agentgpt(["dispute", "--batch", first.batchId, "--row", row("first", b, "openai")], { ...env, AGENTGPT_PRIVATE_KEY: b.privateKey });
    expect(refused(late)).to.contain("no row of this interval can be held any more");
  });
});
