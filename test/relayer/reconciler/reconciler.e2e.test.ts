/**
 * The reconciler end to end on a real `hardhat node` over JSON-RPC, a real Redis and real HTTP: batches settled by
 * the Batcher and Settler, provider usage from a usage API on 127.0.0.1, the UsageOracle answered by the
 * MockFunctionsRouter with what the Node run of oracle/functions/provider-usage.js returns against that API.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet, getAddress } from "ethers";
import type { Redis } from "ioredis";

import { Archive } from "../../../relayer/batcher/archive.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { buildBatch, chargesOf, finish } from "../../../relayer/batcher/batch-file.js";
import { OnchainRegistry } from "../../../relayer/batcher/onchain-registry.js";
import { BlockClock } from "../../../relayer/disputes/block-clock.js";
import { openDisputeChain, type DisputeChain } from "../../../relayer/disputes/dispute-chain.js";
import { DisputeClient } from "../../../relayer/disputes/dispute-client.js";
import {
  AutoDisputer,
  HttpJsonAdapter,
  RedisDisputeLedger,
  Reconciler,
  ReconcilerService,
  formatReport,
  oracleRefund,
  startReconciler,
  type UsageAdapter,
} from "../../../relayer/reconciler/index.js";
import { RpcPool } from "../../../relayer/settler/rpc-pool.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { PooledProvider } from "../../../relayer/reconciler/pooled-provider.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { LocalDon, advance, deployOracle, fundGas, settleReceipts, writeDeployments, type OracleDeployment } from "../../helpers/dispute-chain.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { USAGE_API_KEY } from "../../helpers/oracle.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { UsageServer, send } from "../../oracle/usage-server.js";
import { REPO } from "../../deploy/local-node.js";

const CHAIN = "local";
const BOND = AGPT; // 1 AGPT per dispute

describe("reconciler: end to end on a hardhat node", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let redis: Redis;
  let usage: UsageServer;
  let suite: ChainSuite;
  let deployed: OracleDeployment;
  let prefix: string;
  let archiveDir: string;
  let provider: PooledProvider;
  let chain: DisputeChain;

  before(async function () {
    [node, usage] = await Promise.all([startHardhatNode(), new UsageServer(USAGE_API_KEY).start()]);
    redis = testRedis();
  });
  after(async function () {
    await node?.stop();
    await usage?.stop();
    redis?.disconnect();
  });
  beforeEach(async function () {
    suite = await deployChainSuite(node.url);
    deployed = await deployOracle(suite, usage.url);
    await (await suite.router.setDisputeBond(BOND)).wait();
    await fundGas(suite.provider, suite.payers.map((p) => p.address));
    prefix = uniquePrefix("rec");
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-rec-"));
    usage.records.length = 0;
    usage.queries.length = 0;
    usage.override = undefined;
    provider = new PooledProvider(new RpcPool([node.url], { timeoutMs: 5000 }), suite.chainId, 50);
    chain = await openDisputeChain(provider, { autoPayLLM: suite.routerAddress, usageOracle: deployed.oracleAddress });
  });
  afterEach(async function () {
    provider?.destroy();
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  function build(options: { controlled?: Wallet[]; adapters?: Map<string, UsageAdapter>; toleranceBps?: number; reportDelaySeconds?: number } = {}) {
    const client = new DisputeClient(chain, {
      sources: { archive: new Archive(archiveDir), archiveChain: CHAIN },
      store: new SettlementStore(redis, prefix, CHAIN),
      pollMs: 100,
    });
    const adapters =
      options.adapters ??
      new Map(["openai", "anthropic", "groq"].map((name) => [name, new HttpJsonAdapter({ provider: name, url: usage.url, apiKey: USAGE_API_KEY })]));
    const reconciler = new Reconciler({
      chain,
      chainName: CHAIN,
      clock: client.clock,
      sources: { archive: new Archive(archiveDir), archiveChain: CHAIN },
      adapterFor: (name) => adapters.get(name),
      toleranceBps: options.toleranceBps ?? 100,
      minRefund: 1n,
    });
    const ledger = new RedisDisputeLedger(redis, prefix, CHAIN);
    const payers = new Map((options.controlled ?? []).map((w) => [w.address, { address: w.address, signer: w.connect(provider), source: "test key" }]));
    const disputer = new AutoDisputer({ client, payers, approveBond: false, ledger });
    const service = new ReconcilerService({
      chainName: CHAIN,
      reconciler,
      disputer,
      ledger,
      epochSeconds: 86_400,
      reportDelaySeconds: options.reportDelaySeconds ?? 5,
      intervalMs: 1000,
    });
    return { client, reconciler, ledger, disputer, service };
  }

  it("finds a planted overcharge in a settled batch, disputes it for the payer it holds, and gets it refunded by the oracle", async function () {
    const [a, b, c] = suite.payers as [Wallet, Wallet, Wallet];
    const receipts = [
      receipt(a.address, "openai", "gpt-4-turbo", 10_000),
      receipt(a.address, "openai", "gpt-4-turbo", 10_000),
      receipt(a.address, "openai", "gpt-4-turbo", 10_000),
      receipt(a.address, "anthropic", "claude-3-opus", 5_000),
      receipt(b.address, "openai", "gpt-4-turbo", 8_000),
      receipt(b.address, "openai", "gpt-4-turbo", 8_000),
      receipt(c.address, "groq", "mixtral-8x22b", 4_000),
    ];
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, receipts);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    // The providers' own books. A: one gpt-4-turbo call of 10,000 tokens the provider never served (the plant).
    const at = settledAt - 120;
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at, tokens: 20_000n });
    usage.add({ provider: "anthropic", model: "claude-3-opus", payer: a.address, at, tokens: 5_000n });
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: b.address, at, tokens: 12_000n }); // B is short too, but not ours
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: c.address, at, tokens: 3_990n }); // 0.25%: within tolerance
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt, tokens: 99_999n }); // after the window
    await advance(suite.provider, 10);

    const { service, ledger } = build({ controlled: [a] });
    const depositBefore = await suite.router.balanceOf(a.address);
    const first = await service.pass();

    const report = first.report!;
    expect(report.batches.map((x) => x.batchId)).to.deep.equal([record.batchId]);
    expect(report.batches[0]!.archive.status).to.equal("ok");
    const rowOf = (payer: string, provider: string) => report.rows.find((r) => r.payer === getAddress(payer) && r.provider === provider)!;
    const planted = rowOf(a.address, "openai");
    expect(planted.tokens).to.equal(30_000n);
    expect(planted.reported).to.equal(20_000n);
    expect(planted.archive).to.deep.equal({ receipts: 3, tokens: 30_000n, amount: planted.amount });
    const expectedRefund = planted.amount - (planted.amount * 20_000n + 29_999n) / 30_000n;
    expect(planted.predictedRefund).to.equal(expectedRefund);
    expect(planted.predictedRefund).to.equal(await deployed.oracle.refundFor(planted.amount, 30_000n, 20_000n));
    expect(planted.status).to.equal("overcharged");
    expect(rowOf(b.address, "openai").status).to.equal("overcharged");
    expect(rowOf(a.address, "anthropic").status).to.equal("ok");
    expect(rowOf(c.address, "groq").status).to.equal("ok");

    const lines = new Map(report.providers.map((p) => [p.provider, p]));
    expect(lines.get("openai")).to.include({ rows: 2, tokens: 46_000n, reported: 32_000n, diffTokens: 14_000n, status: "overcharged", overchargedRows: 2 });
    expect(lines.get("openai")!.archiveTokens).to.equal(46_000n);
    expect(lines.get("anthropic")).to.include({ tokens: 5_000n, reported: 5_000n, diffTokens: 0n, status: "ok" });
    expect(lines.get("groq")).to.include({ tokens: 4_000n, reported: 3_990n, diffBps: 25, status: "ok" });
    expect(report.findings.some((f) => f.includes(`row ${planted.index}`) && f.includes("the provider reports 20000"))).to.equal(true);
    const table = formatReport(report).join("\n");
    expect(table).to.match(/openai\s+2\s+46000\s+/);
    expect(table).to.contain(`agentgpt dispute --batch ${record.batchId} --row ${rowOf(b.address, "openai").index}`);

    // Only the row of the payer whose key the operator holds is disputed, and the oracle is asked to verify it.
    expect(first.disputes).to.have.length(1);
    const outcome = first.disputes[0]!;
    expect(outcome.result).to.equal("disputed");
    expect(outcome.target).to.deep.equal({ batchId: record.batchId, index: planted.index });
    if (outcome.result !== "disputed") throw new Error("not disputed");
    expect(outcome.verification?.attempt).to.equal(1);
    expect(Number((await suite.router.disputeInfo(record.batchId, planted.index)).status)).to.equal(1);
    expect(Number((await suite.router.disputeInfo(record.batchId, rowOf(b.address, "openai").index)).status)).to.equal(0);
    expect(await suite.router.balanceOf(a.address)).to.equal(depositBefore - BOND);
    expect((await ledger.list()).map((e) => e.index)).to.deep.equal([planted.index]);

    // The DON runs the Functions source against the usage API and answers through the router.
    const don = new LocalDon(suite.provider, deployed.functionsRouter);
    expect(await don.answerPending()).to.equal(1);
    expect(don.answered[0]!.error).to.equal(undefined);
    expect(BigInt(don.answered[0]!.response!)).to.equal(20_000n);

    const second = await service.pass();
    expect(second.disputes).to.deep.equal([]); // nothing new: no second dispute of the row
    expect(second.followUps).to.have.length(1);
    const resolved = second.followUps[0]!.status;
    expect(resolved.state).to.equal("resolved");
    expect(resolved.resolution).to.include({ refund: expectedRefund, toProvider: planted.amount - expectedRefund, bondReturned: true });
    expect(resolved.resolution!.resolver).to.equal(deployed.oracleAddress);
    expect(resolved.history.map((e) => e.kind)).to.deep.equal(["requested", "verified"]);
    expect(await suite.router.balanceOf(a.address)).to.equal(depositBefore + expectedRefund);
    expect(await ledger.list()).to.deep.equal([]);

    // An epoch report made afterwards shows the dispute and the refund.
    const epoch = await build().reconciler.reconcile({ start: settledAt - 1, end: settledAt + 1 });
    const openai = epoch.providers.find((p) => p.provider === "openai")!;
    expect(openai.disputed).to.equal(1);
    expect(openai.refunded).to.equal(expectedRefund);
    expect(epoch.rows.find((r) => r.index === planted.index)!.dispute).to.equal("resolved");
  });

  it("reports a row billing more than its archived receipts, a failing usage API and a provider without a report", async function () {
    const [a, b] = suite.payers as [Wallet, Wallet];
    // A relayer bug, planted: the row submitted (and in the file) bills 5,000 tokens more than its receipts.
    const receipts = [receipt(a.address, "openai", "gpt-4-turbo", 10_000, { chain: CHAIN }), receipt(b.address, "anthropic", "claude-3-opus", 2_000, { chain: CHAIN })];
    const registry = await new OnchainRegistry(new RpcPool([node.url]), suite.routerAddress).resolve(receipts);
    const built = await buildBatch(receipts, Date.now(), { chain: CHAIN, chainId: suite.chainId, router: suite.routerAddress, registry });
    const row = built.file.rows.findIndex((r) => r.providerName === "openai");
    built.file.rows[row]!.tokens = "15000";
    const bad = await finish(built.file);
    await new Archive(archiveDir).write(CHAIN, bad.file.batchId, bad.bytes);
    const relayer = suite.router.connect(new Wallet(suite.relayerKey, suite.provider));
    await (await relayer.settleBatch(bad.file.batchId, chargesOf(bad.file), bad.file.receiptsRoot, bad.cid)).wait();
    const settledAt = Number((await suite.router.batchInfo(bad.file.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt - 10, tokens: 10_000n });
    usage.override = (query, res) => (query.provider === "openai" ? false : (send(res, 503, { error: "maintenance" }), true));

    const adapters = new Map<string, UsageAdapter>([
      ["openai", new HttpJsonAdapter({ provider: "openai", url: usage.url, apiKey: USAGE_API_KEY })],
      ["anthropic", new HttpJsonAdapter({ provider: "anthropic", url: usage.url, apiKey: USAGE_API_KEY })],
    ]);
    let report = await build({ adapters }).reconciler.reconcile({ start: settledAt, end: settledAt + 1 });
    expect(report.batches[0]!.archive.status).to.equal("mismatch");
    expect(report.batches[0]!.archive.problems).to.include(`row ${row} bills 15000 tokens, its receipts add up to 10000`);
    expect(report.providers.find((p) => p.provider === "openai")!.status).to.equal("archive-mismatch");
    const anthropicRow = report.rows.find((r) => r.provider === "anthropic")!;
    expect(anthropicRow.status).to.equal("report-failed");
    expect(anthropicRow.reportError).to.contain("HTTP 503");
    expect(report.findings.join("\n")).to.contain("the archive does not back the chain");
    // the openai row is still compared with the provider: 15,000 billed, 10,000 reported
    expect(report.rows.find((r) => r.provider === "openai")).to.include({ reported: 10_000n, status: "overcharged" });

    // Without an adapter for a provider its rows are settled and archived, but not compared.
    adapters.delete("anthropic");
    report = await build({ adapters }).reconciler.reconcile({ start: settledAt, end: settledAt + 1 });
    expect(report.rows.find((r) => r.provider === "anthropic")!.status).to.equal("no-report");
    expect(report.providers.find((p) => p.provider === "anthropic")).to.include({ reported: null, status: "archive-mismatch" });

    // A batch file that is missing is reported as such.
    await rm(new Archive(archiveDir).pathOf(CHAIN, bad.file.batchId));
    report = await build({ adapters }).reconciler.reconcile({ start: settledAt, end: settledAt + 1 });
    expect(report.batches[0]!.archive.status).to.equal("missing");
    expect(report.findings[0]).to.contain("no batch file");
    // the rows still come from the settlement's calldata: compared with the provider, but not with receipts
    expect(report.batches[0]!.rowsKnown).to.equal(true);
    expect(report.rows.map((r) => [r.provider, r.tokens, r.archive])).to.have.deep.members([
      ["openai", 15_000n, null],
      ["anthropic", 2_000n, null],
    ]);
    // an empty epoch has nothing
    const empty = await build().reconciler.reconcile({ start: settledAt + 10_000, end: settledAt + 20_000 });
    expect(empty.batches).to.deep.equal([]);
    expect(formatReport(empty).join("\n")).to.contain("No charged rows settled in this epoch.");
  });

  it("does not dispute when the oracle would not refund, nor after the window closed; retries a failed oracle answer", async function () {
    const [a] = suite.payers as [Wallet];
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 10_000),
      receipt(a.address, "groq", "mixtral-8x22b", 10_000),
    ]);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt - 5, tokens: 9_000n });
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: a.address, at: settledAt - 5, tokens: 9_950n }); // 0.5%
    await advance(suite.provider, 10);
    // A 2% tolerance on the reconciler's side: only the 10% shortfall is reported and disputed.
    const { service, client } = build({ controlled: [a], toleranceBps: 200 });
    // The usage API fails for the oracle's first attempt only.
    let failOnce = true;
    usage.override = (_query, res) => {
      if (!failOnce) return false;
      failOnce = false;
      send(res, 500, { error: "down" });
      return true;
    };
    // The reconciler's own query also passes through the override: let it through first.
    failOnce = false;
    const first = await service.pass();
    expect(first.disputes.map((d) => d.result)).to.deep.equal(["disputed"]);
    const target = first.disputes[0]!.target;
    failOnce = true;
    const don = new LocalDon(suite.provider, deployed.functionsRouter);
    await don.answerPending();
    expect(don.answered[0]!.error).to.equal("usage API answered HTTP 500");
    expect((await client.status(target)).history.map((e) => e.kind)).to.deep.equal(["requested", "failed"]);

    const second = await service.pass(); // follows up: the dispute is open and nothing is in flight, so it asks again
    expect(second.followUps[0]!.requested?.attempt).to.equal(2);
    await don.answerPending();
    const third = await service.pass();
    expect(third.followUps[0]!.status.state).to.equal("resolved");
    expect(third.followUps[0]!.status.resolution!.refund).to.equal(oracleRefund(third.followUps[0]!.status.amount, 10_000n, 9_000n, 0n));

    // A later batch: its openai row's window also holds the first batch's usage, which hides its shortfall (the
    // oracle would not refund it either); its anthropic row is short, but its window closes before anyone looks.
    const late = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 4_000),
      receipt(a.address, "anthropic", "claude-3-opus", 4_000),
    ]);
    const lateAt = Number((await suite.router.batchInfo(late.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: lateAt - 1, tokens: 1_000n });
    usage.add({ provider: "anthropic", model: "claude-3-opus", payer: a.address, at: lateAt - 1, tokens: 1_000n });
    await advance(suite.provider, 3_700);
    const fourth = await build({ controlled: [a] }).reconciler.reconcile({ start: lateAt, end: lateAt + 1 });
    expect(fourth.rows.find((r) => r.provider === "openai")).to.include({ reported: 10_000n, predictedRefund: 0n, status: "ok" });
    expect(fourth.rows.find((r) => r.provider === "anthropic")).to.include({ reported: 1_000n, status: "overcharged", disputable: false });
    expect(fourth.findings.join("\n")).to.contain("its dispute window is closed");
    const disputer = new AutoDisputer({
      client,
      payers: new Map([[a.address, { address: a.address, signer: a.connect(provider), source: "test" }]]),
      approveBond: false,
      ledger: build().ledger,
    });
    expect(disputer.candidates(fourth.rows)).to.deep.equal([]);
    expect(first.report!.rows.find((r) => r.provider === "groq")).to.include({ status: "ok", dispute: "none" });
  });

  it("asks a failed provider report again next pass, while the row's window is open", async function () {
    const [a] = suite.payers as [Wallet];
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [receipt(a.address, "openai", "gpt-4-turbo", 10_000)]);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt - 5, tokens: 5_000n });
    await advance(suite.provider, 10);
    const { service, ledger } = build({ controlled: [a] });
    usage.override = (_query, res) => (send(res, 503, { error: "maintenance" }), true);
    const first = await service.pass();
    expect(first.report!.rows[0]!.status).to.equal("report-failed");
    expect(first.disputes).to.deep.equal([]);
    expect(await ledger.getNumber("cursor")).to.equal(settledAt);
    usage.override = undefined;
    await advance(suite.provider, 10);
    const second = await service.pass();
    expect(second.report!.rows[0]!.status).to.equal("overcharged");
    expect(second.disputes.map((d) => d.result)).to.deep.equal(["disputed"]);
    expect(await ledger.getNumber("cursor")).to.be.greaterThan(settledAt);
  });

  it("reads the rejected rows from the chain when the settler's ledger is gone", async function () {
    const [a] = suite.payers as [Wallet];
    const poor = Wallet.createRandom().address;
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(poor, "openai", "gpt-4-turbo", 1_000),
      receipt(a.address, "openai", "gpt-4-turbo", 1_000),
    ]);
    await dropPrefix(redis, prefix); // no settler ledger any more
    const client = new DisputeClient(chain, { sources: { archive: new Archive(archiveDir), archiveChain: CHAIN }, store: new SettlementStore(redis, prefix, CHAIN) });
    const batch = await client.settledBatch(record.batchId);
    expect([...batch.rejected.values()]).to.deep.equal(["InsufficientFunds"]);
    expect(batch.txHash).to.equal(record.txHash);
    expect(batch.dataCid).to.equal(record.cid);
    const clock = new BlockClock(provider);
    expect(await clock.firstBlockAtOrAfter(batch.settledAt, 0, await provider.getBlockNumber())).to.equal(batch.block);
  });

  it("runs as a relayer stage from the YAML configuration: disputes the planted overcharge and follows it to the refund", async function () {
    const [a] = suite.payers as [Wallet];
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [receipt(a.address, "openai", "gpt-4-turbo", 20_000)]);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: settledAt - 30, tokens: 15_000n });
    await advance(suite.provider, 5);
    const deploymentsDir = await mkdtemp(join(tmpdir(), "agentgpt-rec-deploy-"));
    await writeDeployments(deploymentsDir, suite, deployed.oracleAddress);
    const configDir = await mkdtemp(join(tmpdir(), "agentgpt-rec-config-"));
    await writeFile(
      join(configDir, "relayer.yaml"),
      [
        `include: [${join(REPO, "config", "litellm-router.yaml")}]`,
        `redis: { prefix: ${prefix} }`,
        "chains:",
        `  ${CHAIN}: { chain_id: ${suite.chainId}, rpc_urls: ["${node.url}"], router: "${suite.routerAddress}" }`,
        `default_chain: ${CHAIN}`,
        `archive: { dir: ${archiveDir} }`,
        "reconciler:",
        "  interval: 1s",
        "  report_delay: 2s",
        "  providers:",
        `    openai: { url: "${usage.url}", api_key_env: TEST_USAGE_KEY }`,
        "  payers:",
        `    - address: "${a.address}"`,
        "      key_env: TEST_PAYER_KEY",
        "",
      ].join("\n"),
    );
    const config = loadRelayerConfig(join(configDir, "relayer.yaml"), { env: {} });
    const previous = process.env.AGENTGPT_DEPLOYMENTS_DIR;
    process.env.AGENTGPT_DEPLOYMENTS_DIR = deploymentsDir;
    const env = { TEST_USAGE_KEY: USAGE_API_KEY, TEST_PAYER_KEY: a.privateKey };
    const don = new LocalDon(suite.provider, deployed.functionsRouter);
    let handle;
    try {
      // A payer key that does not match its address is refused, naming the field.
      const wrong = { ...config, reconciler: { ...config.reconciler!, payers: [{ ...config.reconciler!.payers[0]!, address: suite.payers[1]!.address }] } };
      try {
        await startReconciler(wrong, { env });
        expect.fail("started");
      } catch (error) {
        expect((error as Error).message).to.contain(`reconciler.payers[0]: the key ($TEST_PAYER_KEY) is for ${a.address}, not the address`);
      }
      const before = await suite.router.balanceOf(a.address);
      handle = await startReconciler(config, { env });
      expect(handle.services.map((s) => s.chain)).to.deep.equal([CHAIN]);
      const until = async (check: () => Promise<boolean>, what: string) => {
        for (let i = 0; i < 150; i++) {
          if (await check()) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect.fail(`timed out waiting for ${what}`);
      };
      await until(async () => Number((await suite.router.disputeInfo(record.batchId, 0)).status) === 1, "the dispute");
      await until(async () => (await don.answerPending()) > 0, "the oracle request");
      await until(async () => Number((await suite.router.disputeInfo(record.batchId, 0)).status) === 2, "the resolution");
      const info = await suite.router.disputeInfo(record.batchId, 0);
      const refund = oracleRefund(info.amount, 20_000n, 15_000n, 0n);
      expect(refund > 0n).to.equal(true);
      expect(await suite.router.balanceOf(a.address)).to.equal(before + refund); // the bond came back with the refund
      const ledger = new RedisDisputeLedger(redis, prefix, CHAIN);
      await until(async () => (await ledger.list()).length === 0, "the follow-up");
      expect(await ledger.getNumber("cursor")).to.be.greaterThan(settledAt);
    } finally {
      await handle?.stop();
      if (previous === undefined) delete process.env.AGENTGPT_DEPLOYMENTS_DIR;
      else process.env.AGENTGPT_DEPLOYMENTS_DIR = previous;
      await rm(deploymentsDir, { recursive: true, force: true });
      await rm(configDir, { recursive: true, force: true });
    }
  });
});
