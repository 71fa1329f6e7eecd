/**
 * The reconciler end to end on a real `hardhat node` over JSON-RPC, a real Redis and real HTTP: batches settled by
 * the Batcher and Settler, provider usage from a usage API on 127.0.0.1, the UsageOracle answered by the
 * MockFunctionsRouter with what the Node run of oracle/functions/provider-usage.js returns against that API. Every
 * interval (payer, provider, model, usage bucket) is compared whole, whatever batch billed it; every open dispute on
 * the router is followed, the reconciler's or anyone's.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet, getAddress } from "ethers";
import type { Redis } from "ioredis";
import { Registry } from "prom-client";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { buildBatch, chargesOf, finish } from "../../../relayer/batcher/batch-file.js";
import { OnchainRegistry } from "../../../relayer/batcher/onchain-registry.js";
import { BlockClock } from "../../../relayer/disputes/block-clock.js";
import { openDisputeChain, type DisputeChain } from "../../../relayer/disputes/dispute-chain.js";
import { DisputeClient } from "../../../relayer/disputes/dispute-client.js";
import { disputeIdOf } from "../../../relayer/disputes/interval.js";
import {
  AutoDisputer,
  HttpJsonAdapter,
  RedisDisputeLedger,
  Reconciler,
  ReconcilerService,
  formatReport,
  startReconciler,
  type UsageAdapter,
} from "../../../relayer/reconciler/index.js";
import { RpcPool } from "../../../relayer/settler/rpc-pool.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { PooledProvider } from "../../../relayer/reconciler/pooled-provider.js";
import { ReconcilerMetrics } from "../../../relayer/reconciler/metrics.js";
import { AGPT, deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { parseExposition, samplesOf, total } from "../../helpers/prometheus.js";
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

  function build(options: { controlled?: Wallet[]; keeper?: Wallet; adapters?: Map<string, UsageAdapter>; toleranceBps?: number; reportDelaySeconds?: number } = {}) {
    const client = new DisputeClient(chain, {
      sources: { archive: new LocalArchive(archiveDir), archiveChain: CHAIN },
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
      sources: { archive: new LocalArchive(archiveDir), archiveChain: CHAIN },
      adapterFor: (name) => adapters.get(name),
      toleranceBps: options.toleranceBps ?? 100,
      minRefund: 1n,
    });
    const ledger = new RedisDisputeLedger(redis, prefix, CHAIN);
    const payers = new Map((options.controlled ?? []).map((w) => [w.address, { address: w.address, signer: w.connect(provider), source: "test key" }]));
    const registry = new Registry();
    const metrics = new ReconcilerMetrics(registry);
    const events = metrics.events(CHAIN);
    metrics.watch(CHAIN, ledger);
    const scrape = async () => parseExposition(await registry.metrics());
    const disputer = new AutoDisputer({ client, payers, keeper: options.keeper?.connect(provider), approveBond: false, ledger, events });
    const service = new ReconcilerService({
      chainName: CHAIN,
      reconciler,
      disputer,
      ledger,
      epochSeconds: 86_400,
      reportDelaySeconds: options.reportDelaySeconds ?? 5,
      intervalMs: 1000,
      events,
    });
    return { client, reconciler, ledger, disputer, service, scrape };
  }

  /** The bucket of the chain's clock now and a call start inside it (ms), so every batch below commits that bucket. */
  async function bucketNow(): Promise<{ callsFrom: number; startTime: number }> {
    const bucket = Number(await suite.router.usageBucket());
    const now = (await suite.provider.getBlock("latest"))!.timestamp;
    const callsFrom = now - (now % bucket);
    return { callsFrom, startTime: (callsFrom + 5) * 1000 };
  }

  it("compares an interval billed by two batches with the provider's report, disputes it for the payer it holds, and gets exactly the predicted refund", async function () {
    const [a, b, c] = suite.payers as [Wallet, Wallet, Wallet];
    const { callsFrom, startTime } = await bucketNow();
    const at = callsFrom + 5;
    const first = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(a.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(a.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(a.address, "anthropic", "claude-3-opus", 5_000, { startTime }),
      receipt(b.address, "openai", "gpt-4-turbo", 8_000, { startTime }),
      receipt(b.address, "openai", "gpt-4-turbo", 8_000, { startTime }),
      receipt(c.address, "groq", "mixtral-8x22b", 4_000, { startTime }),
    ]);
    // The plant: one of A's calls billed again in a second batch of the same bucket (and B's, whose key we lack).
    const second = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(a.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(b.address, "openai", "gpt-4-turbo", 4_000, { startTime }),
    ]);
    // The providers' own books: exactly the calls served once.
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at, tokens: 30_000n });
    usage.add({ provider: "anthropic", model: "claude-3-opus", payer: a.address, at, tokens: 5_000n });
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: b.address, at, tokens: 16_000n });
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: c.address, at, tokens: 3_990n }); // 0.25%: within tolerance
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: callsFrom + 3_600, tokens: 99_999n }); // the next bucket
    await advance(suite.provider, 10);

    const { service, ledger, client } = build({ controlled: [a], keeper: a });
    const depositBefore = await suite.router.balanceOf(a.address);
    const pass = await service.pass();
    const report = pass.report!;
    expect(report.batches.map((x) => x.batchId)).to.deep.equal([first.batchId, second.batchId]);
    expect(report.batches.map((x) => [x.callsFrom, x.archive.status])).to.deep.equal([[callsFrom, "ok"], [callsFrom, "ok"]]);
    const intervalOf = (payer: string, provider: string) => report.intervals.find((i) => i.payer === getAddress(payer) && i.provider === provider)!;
    const planted = intervalOf(a.address, "openai");
    expect(planted.rows.map((r) => [r.batchId, r.tokens, r.holdable])).to.deep.equal(
      [
        [first.batchId, 30_000n, true],
        [second.batchId, 10_000n, true],
      ].sort((x, y) => (BigInt(x[0] as string) < BigInt(y[0] as string) ? -1 : 1)),
    );
    expect(planted).to.include({ callsFrom, callsTo: callsFrom + 3600, billedTokens: 40_000n, heldTokens: 40_000n, reported: 30_000n, excess: 10_000n, predictedOverbilled: 10_000n, status: "overcharged" });
    const expectedRefund = (planted.heldAmount * 10_000n) / 40_000n;
    expect(planted.predictedRefund).to.equal(expectedRefund);
    expect(intervalOf(b.address, "openai")).to.include({ billedTokens: 20_000n, reported: 16_000n, status: "overcharged" });
    expect(intervalOf(a.address, "anthropic").status).to.equal("ok");
    expect(intervalOf(c.address, "groq").status).to.equal("ok");
    const lines = new Map(report.providers.map((p) => [p.provider, p]));
    expect(lines.get("openai")).to.include({ intervals: 2, rows: 4, tokens: 60_000n, reported: 46_000n, diffTokens: 14_000n, status: "overcharged", overchargedIntervals: 2 });
    expect(lines.get("openai")!.archiveTokens).to.equal(60_000n);
    expect(lines.get("groq")).to.include({ tokens: 4_000n, reported: 3_990n, diffBps: 25, status: "ok" });
    expect(report.findings.some((f) => f.includes(`${getAddress(a.address)} on openai/gpt-4-turbo`) && f.includes("the provider reports 30000"))).to.equal(true);
    expect(formatReport(report).join("\n")).to.contain(`agentgpt dispute --payer ${getAddress(b.address)} --provider openai --model gpt-4-turbo --calls-from ${callsFrom}`);

    // Only the interval of the payer whose key the operator holds is disputed; the rows of both batches are named.
    expect(pass.disputes).to.have.length(1);
    const outcome = pass.disputes[0]!;
    if (outcome.result !== "disputed") throw new Error(`not disputed: ${JSON.stringify(outcome)}`);
    const key = { payer: getAddress(a.address), provider: planted.providerId, model: planted.modelId, callsFrom };
    expect(outcome.disputeId).to.equal(disputeIdOf(key, 0));
    expect(outcome.requestId).to.match(/^0x[0-9a-f]{64}$/); // no verifier on this router: the disputer asked itself
    const info = await suite.router.disputeInfo(outcome.disputeId);
    expect([info.rows, info.billedTokens, info.heldTokens, info.heldAmount]).to.deep.equal([2n, 40_000n, 40_000n, planted.heldAmount]);
    // the contract's own verdict for the provider's figure is the one predicted
    expect(await deployed.oracle.overbilledFor(outcome.disputeId, 30_000n)).to.equal(10_000n);
    expect((await suite.router.intervalInfo(b.address, planted.providerId, planted.modelId, callsFrom)).disputes).to.equal(0n);
    expect(await suite.router.balanceOf(a.address)).to.equal(depositBefore - BOND);
    expect((await ledger.list()).map((e) => [e.disputeId, e.mine])).to.deep.equal([[outcome.disputeId, true]]);

    // The DON runs the Functions source against the usage API for the bucket and answers through the router.
    const don = new LocalDon(suite.provider, deployed.functionsRouter);
    expect(await don.answerPending()).to.equal(1);
    expect(don.answered[0]!.error).to.equal(undefined);
    expect(BigInt(don.answered[0]!.response!)).to.equal(30_000n);
    const next = await service.pass();
    expect(next.disputes).to.deep.equal([]); // the interval's dispute is closed and nothing is left to refund
    expect(next.followUps.map((f) => [f.disputeId, f.state])).to.deep.equal([[outcome.disputeId, "resolved"]]);
    const status = await client.status(outcome.disputeId);
    expect(status.resolution).to.include({ refund: expectedRefund, toProvider: planted.heldAmount - expectedRefund, bondReturned: true });
    expect(status.resolution!.resolver).to.equal(deployed.oracleAddress);
    expect(status.history.map((e) => e.kind)).to.deep.equal(["requested", "verified"]);
    expect(await suite.router.balanceOf(a.address)).to.equal(depositBefore + expectedRefund);
    expect(await ledger.list()).to.deep.equal([]);

    // An epoch report made afterwards counts the refund and finds nothing left to dispute in that interval.
    const settledAt = Number((await suite.router.batchInfo(first.batchId)).settledAt);
    const epoch = await build().reconciler.reconcile({ start: settledAt - 1, end: settledAt + 1 });
    const after = epoch.intervals.find((i) => i.payer === getAddress(a.address) && i.provider === "openai")!;
    expect(after).to.include({ refundedTokens: 10_000n, disputes: 1, openDispute: null, status: "ok" });
    expect(after.rows.map((r) => r.heldBy)).to.deep.equal([outcome.disputeId, outcome.disputeId]);
  });

  it("follows every open dispute on the router, not only its own: starts the verification, retries a failed answer once allowed, settles an expired one", async function () {
    const [a, b, c] = suite.payers as [Wallet, Wallet, Wallet];
    const { callsFrom, startTime } = await bucketNow();
    await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [
      receipt(b.address, "openai", "gpt-4-turbo", 10_000, { startTime }),
      receipt(c.address, "groq", "mixtral-8x22b", 10_000, { startTime }),
    ]);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: b.address, at: callsFrom + 5, tokens: 9_000n });
    usage.add({ provider: "groq", model: "mixtral-8x22b", payer: c.address, at: callsFrom + 5, tokens: 10_000n });
    // B and C dispute on their own (no verifier on this router: nobody asks the oracle yet); the reconciler holds
    // neither key, only a keeper's.
    const { service, client, ledger, scrape } = build({ keeper: a });
    const openFor = async (payer: Wallet, providerName: string, model: string) => {
      const key = { payer: payer.address, provider: Number(await suite.router.providerId(providerName)), model: Number(await suite.router.modelId(model)), callsFrom };
      return (await client.open(await client.prepare(key, payer.address), payer.connect(provider))).disputeId;
    };
    const disputeB = await openFor(b, "openai", "gpt-4-turbo");
    const disputeC = await openFor(c, "groq", "mixtral-8x22b");
    const cBefore = await suite.router.balanceOf(c.address);
    const don = new LocalDon(suite.provider, deployed.functionsRouter);

    // The usage API is down for the oracle: the keeper's first request fails.
    usage.override = (_query, res) => (send(res, 500, { error: "down" }), true);
    const first = await service.pass();
    const action = (pass: typeof first, id: string) => pass.followUps.find((f) => f.disputeId === id)!;
    expect(action(first, disputeB)).to.include({ state: "open", action: "request" });
    expect(action(first, disputeB).requested?.attempt).to.equal(1);
    expect(action(first, disputeC).requested?.attempt).to.equal(1);
    expect((await ledger.list()).map((e) => e.mine)).to.deep.equal([false, false]);
    // metrics: two disputes open (not this relayer's), the nearest deadlines counted down from the chain's
    let metrics = await scrape();
    expect(total(metrics, "agentgpt_reconciler_disputes_open", { chain: CHAIN, mine: "false" })).to.equal(2);
    expect(total(metrics, "agentgpt_reconciler_disputes_open", { chain: CHAIN, mine: "true" })).to.equal(0);
    const infos = [await suite.router.disputeInfo(disputeB), await suite.router.disputeInfo(disputeC)];
    const chainNow = (await suite.provider.getBlock("latest"))!.timestamp;
    const nearest = (field: "arbiterDeadline" | "governanceDeadline") => Math.min(...infos.map((i) => Number(i[field]))) - chainNow;
    expect(Math.abs(total(metrics, "agentgpt_reconciler_dispute_deadline_seconds", { chain: CHAIN, deadline: "arbiter" }) - nearest("arbiterDeadline"))).to.be.at.most(5);
    expect(Math.abs(total(metrics, "agentgpt_reconciler_dispute_deadline_seconds", { chain: CHAIN, deadline: "governance" }) - nearest("governanceDeadline"))).to.be.at.most(5);
    expect(await don.answerPending()).to.equal(2);
    expect(don.answered.map((x) => x.error)).to.deep.equal(["usage API answered HTTP 500", "usage API answered HTTP 500"]);

    // Retries are spaced by the oracle's request timeout: nothing is sent before it.
    const early = await service.pass();
    expect(action(early, disputeB).action).to.equal("wait-oracle");
    expect(action(early, disputeB).requested).to.equal(undefined);
    const timeout = Number(await deployed.oracle.requestTimeout());
    await advance(suite.provider, timeout);
    // the usage API is back, except for C's queries: C's answers keep failing
    usage.override = (query, res) => (query.payer === c.address.toLowerCase() ? (send(res, 500, { error: "down" }), true) : false);
    const retried = await service.pass();
    expect(action(retried, disputeB).requested?.attempt).to.equal(2);
    expect(action(retried, disputeC).requested?.attempt).to.equal(2);
    await don.answerPending();
    expect(Number((await suite.router.disputeInfo(disputeB)).status)).to.equal(2);
    expect((await suite.router.disputeInfo(disputeB)).overbilledTokens).to.equal(1_000n);
    const settledB = await service.pass();
    expect(action(settledB, disputeB)).to.include({ state: "resolved" });
    expect((await ledger.list()).map((e) => e.disputeId)).to.deep.equal([disputeC]);
    metrics = await scrape();
    expect(total(metrics, "agentgpt_reconciler_disputes_open", { chain: CHAIN })).to.equal(1);

    // C: no answer resolves it; past its governance deadline the keeper settles it: the charge stands, bond back.
    const info = await suite.router.disputeInfo(disputeC);
    if (Number(info.status) === 1) {
      const now = (await suite.provider.getBlock("latest"))!.timestamp;
      await advance(suite.provider, Number(info.governanceDeadline) - now);
      const expired = await service.pass();
      expect(action(expired, disputeC)).to.include({ action: "settle-expired" });
      expect(action(expired, disputeC).settledTx).to.match(/^0x[0-9a-f]{64}$/);
      expect(Number((await suite.router.disputeInfo(disputeC)).status)).to.equal(3);
      expect(await suite.router.balanceOf(c.address)).to.equal(cBefore + BOND);
      await service.pass();
      metrics = await scrape();
      expect(total(metrics, "agentgpt_reconciler_disputes_open", { chain: CHAIN })).to.equal(0);
      expect(samplesOf(metrics, "agentgpt_reconciler_dispute_deadline_seconds")).to.deep.equal([]); // none open: no deadline
    } else {
      expect.fail(`C's dispute closed without an answer (status ${info.status})`);
    }
  });

  it("asks a failed provider report again next pass, while a row of the interval can be held", async function () {
    const [a] = suite.payers as [Wallet];
    const { callsFrom, startTime } = await bucketNow();
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [receipt(a.address, "openai", "gpt-4-turbo", 10_000, { startTime })]);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: callsFrom + 5, tokens: 5_000n });
    await advance(suite.provider, 10);
    const { service, ledger } = build({ controlled: [a] });
    usage.override = (_query, res) => (send(res, 503, { error: "maintenance" }), true);
    const first = await service.pass();
    expect(first.report!.intervals[0]!.status).to.equal("report-failed");
    expect(first.disputes).to.deep.equal([]);
    expect(await ledger.getNumber("cursor")).to.equal(settledAt);
    usage.override = undefined;
    await advance(suite.provider, 10);
    const second = await service.pass();
    expect(second.report!.intervals[0]!).to.include({ status: "overcharged", predictedOverbilled: 5_000n });
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
    const client = new DisputeClient(chain, { sources: { archive: new LocalArchive(archiveDir), archiveChain: CHAIN }, store: new SettlementStore(redis, prefix, CHAIN) });
    const batch = await client.settledBatch(record.batchId);
    expect([...batch.rejected.values()]).to.deep.equal(["InsufficientFunds"]);
    expect(batch.txHash).to.equal(record.txHash);
    expect(batch.dataCid).to.equal(record.cid);
    const clock = new BlockClock(provider);
    expect(await clock.firstBlockAtOrAfter(batch.settledAt, 0, await provider.getBlockNumber())).to.equal(batch.block);
  });

  it("runs as a relayer stage from the YAML configuration: disputes the planted overcharge and follows it to the refund", async function () {
    const [a] = suite.payers as [Wallet];
    const { callsFrom, startTime } = await bucketNow();
    const record = await settleReceipts(suite, node.url, redis, prefix, archiveDir, CHAIN, [receipt(a.address, "openai", "gpt-4-turbo", 20_000, { startTime })]);
    const settledAt = Number((await suite.router.batchInfo(record.batchId)).settledAt);
    usage.add({ provider: "openai", model: "gpt-4-turbo", payer: a.address, at: callsFrom + 5, tokens: 15_000n });
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
      const providerId = Number(await suite.router.providerId("openai"));
      const modelId = Number(await suite.router.modelId("gpt-4-turbo"));
      const disputeId = disputeIdOf({ payer: a.address, provider: providerId, model: modelId, callsFrom }, 0);
      await until(async () => Number((await suite.router.disputeInfo(disputeId)).status) === 1, "the dispute");
      await until(async () => (await don.answerPending()) > 0, "the oracle request");
      await until(async () => Number((await suite.router.disputeInfo(disputeId)).status) === 2, "the resolution");
      const info = await suite.router.disputeInfo(disputeId);
      const refund = (info.heldAmount * 5_000n) / 20_000n;
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
