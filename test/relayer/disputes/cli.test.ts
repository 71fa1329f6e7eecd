/**
 * `agentgpt dispute` and `agentgpt reconcile` as processes against a real `hardhat node`: a batch settled by the
 * Batcher and Settler, the payer's dispute sent from the command line, verified by the UsageOracle (answered by a
 * local DON running the Functions source against a usage API on 127.0.0.1), and the outcome printed. Bad input
 * gets a message that names the field and the fix.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet } from "ethers";
import type { Redis } from "ioredis";

import { Archive } from "../../../relayer/batcher/archive.js";
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

/** An IPFS gateway for tests: GET /ipfs/<cid> answers whatever `files` holds under that CID. */
async function gateway(files: Map<string, Uint8Array>): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const cid = /^\/ipfs\/([A-Za-z0-9]+)$/.exec(req.url ?? "")?.[1];
    const bytes = cid === undefined ? undefined : files.get(cid);
    if (req.method !== "GET" || bytes === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": "application/octet-stream" }).end(Buffer.from(bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("agentgpt dispute / reconcile (CLI against a hardhat node)", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let redis: Redis;
  let usage: UsageServer;
  let suite: ChainSuite;
  let deployed: OracleDeployment;
  let don: LocalDon;
  let prefix: string;
  let archiveDir: string;
  let emptyArchive: string;
  let deploymentsDir: string;
  let record: SettlementRecord;
  let settledAt: number;
  let env: Record<string, string>;
  let a: Wallet, b: Wallet, c: Wallet;
  const rows: Record<string, number> = {};

  before(async function () {
    [node, usage] = await Promise.all([startHardhatNode(), new UsageServer(USAGE_API_KEY).start()]);
    redis = testRedis();
    prefix = uniquePrefix("dsp");
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-dsp-"));
    emptyArchive = await mkdtemp(join(tmpdir(), "agentgpt-dsp-empty-"));
    deploymentsDir = await mkdtemp(join(tmpdir(), "agentgpt-dsp-deploy-"));
    suite = await deployChainSuite(node.url);
    deployed = await deployOracle(suite, usage.url);
    await (await suite.router.setDisputeBond(BOND)).wait();
    await writeDeployments(deploymentsDir, suite, deployed.oracleAddress);
    [a, b, c] = suite.payers as [Wallet, Wallet, Wallet];
    await fundGas(suite.provider, [a.address, b.address, c.address]);
    const poor = Wallet.createRandom().address;
    record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 30_000),
      receipt(a.address, "anthropic", "claude-3-opus", 6_000),
      receipt(b.address, "openai", "gpt-4-turbo", 10_000),
      receipt(c.address, "groq", "mixtral-8x22b", 8_000),
      receipt(poor, "openai", "gpt-4-turbo", 1_000),
    ]);
    const file = (await new Archive(archiveDir).read(CHAIN, record.batchId))!;
    for (const row of file.rows) rows[`${row.user.toLowerCase()}|${row.providerName}`] = row.index;
    rows.poor = file.rows.find((r) => r.user.toLowerCase() === poor.toLowerCase())!.index;
    settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt - 60, tokens: 24_000n }); // 20% short
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: b.address, at: settledAt - 60, tokens: 10_000n });
    usage.add({ provider: "anthropic", model: "claude-3-opus", payer: a.address, at: settledAt - 60, tokens: 6_000n });
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: c.address, at: settledAt - 60, tokens: 8_000n });
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
    for (const dir of [archiveDir, emptyArchive, deploymentsDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  const row = (payer: Wallet, provider: string) => String(rows[`${payer.address.toLowerCase()}|${provider}`]);

  it("disputes a row as its payer, has the oracle verify it, and prints the refund; status shows the outcome", async function () {
    const index = row(a, "openai");
    const before = await suite.router.balanceOf(a.address);
    const run = await agentgpt(
      ["dispute", "--batch", record.batchId, "--row", index, "--archive", archiveDir, "--reason", "provider bills 24k tokens", "--timeout", "60s"],
      env,
    );
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const info = await suite.router.disputeInfo(record.batchId, Number(index));
    const refund = info.amount - (info.amount * 24_000n + 29_999n) / 30_000n;
    expect(refund > 0n).to.equal(true);
    expect(run.stdout).to.contain(`payer ${a.address} ($AGENTGPT_PRIVATE_KEY)`);
    expect(run.stdout).to.contain(`Row ${index}: openai/gpt-4-turbo, 30000 tokens, ${formatTokenAmount(info.amount, UNIT)} (1 receipt)`);
    expect(run.stdout).to.match(/file .*\.json \(CID \S+ verified, rows root matches\)/);
    expect(run.stdout).to.contain("Bond: 1 AGPT (deposit");
    expect(run.stdout).to.contain("Reason: provider bills 24k tokens");
    expect(run.stdout).to.match(/Disputed in 0x[0-9a-f]{64} \(block \d+\); bond 1 AGPT posted\./);
    expect(run.stdout).to.match(/Oracle verification requested in 0x[0-9a-f]{64} \(request 0x[0-9a-f]{64}, attempt 1\)\./);
    expect(run.stdout).to.contain(`Dispute of row ${index} of batch ${record.batchId}: RESOLVED`);
    expect(run.stdout).to.contain("provider reports 24000 tokens against 30000 billed");
    expect(run.stdout).to.contain(`outcome    refund ${formatTokenAmount(refund, UNIT)} to the payer, ${formatTokenAmount(info.amount - refund, UNIT)} to the provider; bond returned to the payer`);
    expect(run.stdout + run.stderr).to.not.contain(a.privateKey.slice(2));
    expect(await suite.router.balanceOf(a.address)).to.equal(before + refund);

    const status = await agentgpt(["dispute", "status", "--batch", record.batchId, "--row", index], env);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.contain("RESOLVED");
    expect(status.stdout).to.contain(`resolved   by ${deployed.oracleAddress}`);
  });

  it("fetches the batch file by its CID from an IPFS gateway when the archive lacks it, and refuses bytes that do not hash to it", async function () {
    const bytes = (await new Archive(archiveDir).readBytes(CHAIN, record.batchId))!;
    const honest = await gateway(new Map([[record.cid, bytes]]));
    const forged = new Uint8Array(bytes);
    forged[forged.length - 5] = forged[forged.length - 5]! ^ 1;
    const lying = await gateway(new Map([[record.cid, forged]]));
    try {
      const envB = { ...env, AGENTGPT_PRIVATE_KEY: b.privateKey };
      const args = ["dispute", "--batch", record.batchId, "--row", row(b, "openai"), "--archive", emptyArchive, "--no-wait"];
      const refused = await agentgpt([...args, "--ipfs", lying.url], envB);
      expect(refused.code, refused.stdout + refused.stderr).to.equal(2);
      expect(refused.stderr).to.contain(`bytes for ${record.cid} that do not hash to it: refused`);
      const fetched = await agentgpt([...args, "--ipfs", honest.url], envB);
      expect(fetched.code, fetched.stdout + fetched.stderr).to.equal(0);
      expect(fetched.stdout).to.contain(`file ipfs://${record.cid} (CID ${record.cid} verified, rows root matches)`);
      expect(fetched.stdout).to.contain(`Follow it with: agentgpt dispute status --batch ${record.batchId} --row ${row(b, "openai")}`);
    } finally {
      await honest.close();
      await lying.close();
    }
  });

  it("prints the reconciliation table and JSON for an epoch", async function () {
    const epoch = `${settledAt - 5}/${settledAt + 5}`;
    // The table with everything on the command line; the JSON with the relayer's configuration file.
    const configFile = join(emptyArchive, "relayer.yaml");
    await writeFile(
      configFile,
      [
        `include: [${join(REPO, "config", "litellm-router.yaml")}]`,
        `redis: { prefix: ${prefix} }`,
        `chains: { ${CHAIN}: { chain_id: 31337, rpc_urls: ["${node.url}"] } }`,
        `archive: { dir: ${archiveDir} }`,
        "reconciler:",
        "  providers:",
        ...["openai", "anthropic", "groq"].map((name) => `    ${name}: { url: "${usage.url}", api_key_env: TEST_USAGE_KEY }`),
        "",
      ].join("\n"),
    );
    const [table, json] = await Promise.all([
      agentgpt(["reconcile", "--epoch", epoch, "--archive", archiveDir, "--usage-url", usage.url, "--usage-key-env", "TEST_USAGE_KEY"], env),
      agentgpt(["reconcile", "--epoch", epoch, "--config", configFile, "--json"], env),
    ]);
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout).to.contain("Reconciliation of chain-31337 (chain 31337)");
    expect(table.stdout).to.match(/openai\s+2\s+40000\s+.*\s+40000\s+.*\s+34000\s+\+6000\s+\+15\.00%/);
    expect(table.stdout).to.match(/groq\s+1\s+8000\s+.*\s+ok$/m);
    expect(json.code, json.stderr).to.equal(0);
    const report = JSON.parse(json.stdout) as { chain: { name: string }; providers: { provider: string; tokens: string; reported: string; status: string }[]; batches: { batchId: string; rejected: [number, string][] }[] };
    expect(report.chain.name).to.equal(CHAIN);
    expect(report.batches.map((x) => x.batchId)).to.deep.equal([record.batchId]);
    expect(report.batches[0]!.rejected).to.deep.equal([[rows.poor, "InsufficientFunds"]]);
    expect(report.providers.find((p) => p.provider === "openai")).to.include({ tokens: "40000", reported: "34000", status: "overcharged" });
  });

  it("refuses bad input with the field and the fix; covers a short bond only when asked", async function () {
    const batch = record.batchId;
    const envC = { ...env, AGENTGPT_PRIVATE_KEY: c.privateKey };
    // c empties its deposit: the bond must come from its wallet by allowance.
    const deposit = await suite.router.balanceOf(c.address);
    await (await suite.router.connect(c.connect(suite.provider)).withdraw(deposit)).wait();
    const [badBatch, badRow, rejected, notPayer, twice, noFile, unknown, badEpoch, bond] = await Promise.all([
      agentgpt(["dispute", "--batch", "0x1234", "--row", "0"], env),
      agentgpt(["dispute", "--batch", batch, "--row", "first"], env),
      agentgpt(["dispute", "--batch", batch, "--row", String(rows.poor), "--archive", archiveDir], env),
      agentgpt(["dispute", "--batch", batch, "--row", row(b, "openai"), "--archive", archiveDir, "--no-wait"], envC),
      agentgpt(["dispute", "--batch", batch, "--row", row(a, "openai"), "--archive", archiveDir], env),
      agentgpt(["dispute", "--batch", batch, "--row", row(a, "anthropic"), "--archive", emptyArchive], env),
      agentgpt(["dispute", "--batch", `0x${"ab".repeat(32)}`, "--row", "0", "--archive", archiveDir], env),
      agentgpt(["reconcile", "--epoch", "last tuesday"], env),
      agentgpt(["dispute", "--batch", batch, "--row", row(c, "groq"), "--archive", archiveDir, "--no-wait"], envC),
    ]);
    const refused = (run: Run) => {
      expect(run.code, run.stdout + run.stderr).to.equal(2);
      return run.stderr;
    };
    expect(refused(badBatch)).to.contain('--batch "0x1234": a batch id is 0x and 64 hex digits');
    expect(refused(badRow)).to.contain('--row "first": a row index is a whole number from 0');
    expect(refused(rejected)).to.contain(`--row ${rows.poor}: the contract rejected this row (InsufficientFunds) and charged nothing for it`);
    expect(refused(notPayer)).to.contain(`only the row's payer ${b.address} may dispute row ${row(b, "openai")}; the signer is ${c.address}: sign with the payer's key`);
    expect(refused(twice)).to.contain(`was already disputed (resolved): follow it with \`agentgpt dispute status --batch ${batch} --row ${row(a, "openai")}\``);
    expect(refused(noFile)).to.contain("is not in the archive");
    expect(refused(noFile)).to.contain("pass --archive <dir> (the relayer's archive.dir) or --ipfs <url>");
    expect(refused(unknown)).to.contain(`batch 0x${"ab".repeat(32)} is not settled on chain 31337`);
    expect(refused(badEpoch)).to.contain('--epoch "last tuesday": write a UTC day "2025-06-01"');
    expect(refused(bond)).to.contain("the bond is 1 AGPT: the deposit holds 0 AGPT, so 1 AGPT must come from the wallet");
    expect(bond.stderr).to.contain("approve the router for 1 AGPT (pass --approve-bond)");
    expect(Number((await suite.router.disputeInfo(batch, Number(row(c, "groq")))).status)).to.equal(0);

    const approved = await agentgpt(["dispute", "--batch", batch, "--row", row(c, "groq"), "--archive", archiveDir, "--approve-bond", "--no-wait"], envC);
    expect(approved.code, approved.stdout + approved.stderr).to.equal(0);
    expect(approved.stdout).to.match(/Approved the router for the bond's shortfall in 0x[0-9a-f]{64}\./);
    expect((await suite.router.disputeInfo(batch, Number(row(c, "groq")))).bond).to.equal(BOND);

    // After the window no dispute is possible.
    await advance(suite.provider, 3_700);
    const late = await agentgpt(["dispute", "--batch", batch, "--row", row(a, "anthropic"), "--archive", archiveDir], env);
    expect(refused(late)).to.match(/the dispute window of batch 0x[0-9a-f]{64} closed at \d{4}-\d{2}-\d{2}T/);
  });
});
