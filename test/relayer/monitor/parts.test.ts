/**
 * The monitor's parts: exact formatting, option checks, the box table, the report's arithmetic on a snapshot built
 * by hand (route-mixing rows, a batch without its file, the payer filter, the escrow split), the relayer's state
 * read from real Redis (no receipt counted twice while it moves from ingest's queue to the batcher), and the
 * router's events read incrementally from the Hardhat network (new blocks only, a rewritten chain started over,
 * the window's edge).
 */
import { expect } from "chai";
import { network } from "hardhat";
import type { Redis } from "ioredis";

import { BatchPool } from "../../../relayer/batcher/batch-pool.js";
import { ReceiptStore, UNBILLABLE_REASONS, type Receipt, type UnbillableReason } from "../../../relayer/queue/index.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import {
  boxTable,
  buildReport,
  describeWindow,
  formatCount,
  formatMilli,
  formatMilliRounded,
  formatUnits,
  MonitorError,
  NO_BATCH_FILE,
  parseGranularity,
  parseSince,
  parseUser,
  readRelayerState,
  receiptLines,
  renderReport,
  RouterEvents,
  type BatchLines,
  type ChainSnapshot,
  type RowLine,
  type SettledBatch,
  type Snapshot,
} from "../../../relayer/monitor/index.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { splitRefund } from "../../../relayer/monitor/router-events.js";
import { deploySuite, GPT4_PRICE, MIXTRAL_PRICE, nextDisputeId, row, rowRefs, settle } from "../../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();

const ALICE = "0x00000000000000000000000000000000000A11CE";
const BOB = "0x0000000000000000000000000000000000000B0B";
const TOKEN = { symbol: "AGPT", decimals: 18 };

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(MonitorError);
    return (error as Error).message;
  }
  throw new Error("did not throw");
}

describe("monitor: formatting and options", function () {
  it("formats token units exactly with the token's decimals", function () {
    expect(formatUnits(182_340_000_000_000_000_000n, 18)).to.equal("182.34");
    expect(formatUnits(12_891n * 10n ** 18n, 18)).to.equal("12,891");
    expect(formatUnits(1n, 18)).to.equal("0.000000000000000001");
    expect(formatUnits(123_456_789_012_345_678_901_234n, 18)).to.equal("123,456.789012345678901234");
    expect(formatUnits(0n, 18)).to.equal("0");
    expect(formatUnits(1_000_000n, 6, { group: false })).to.equal("1");
    expect(formatUnits(-15n, 1)).to.equal("-1.5");
    expect(formatMilli(1n, 18)).to.equal("0.000000000000000000001");
    expect(formatMilli(2_500n, 0)).to.equal("2.5");
    expect(formatCount(26_597)).to.equal("26,597");
  });

  it("names the option and the fix for bad input", function () {
    expect(parseGranularity("Model")).to.equal("model");
    expect(message(() => parseGranularity("cost"))).to.equal("--granularity cost: one of provider, model, user, route");
    expect(parseSince("24h")).to.equal(86_400_000);
    expect(parseSince("30m")).to.equal(1_800_000);
    expect(parseSince("7d")).to.equal(604_800_000);
    for (const bad of ["2x", "0m", "32d", "24", "1.5h", ""]) {
      expect(message(() => parseSince(bad))).to.equal(`--since ${bad}: a duration from 1m to 31d, e.g. 24h, 30m or 7d`);
    }
    expect(parseUser("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")).to.equal("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    expect(message(() => parseUser("0x12"))).to.equal("--user 0x12: a payer address is 0x and 40 hex digits");
    expect(message(() => parseUser("0x70997970C51812dc3A010C7d01b50e0d17dc79c8"))).to.match(/checksum/);
    expect(describeWindow(86_400_000)).to.equal("24h");
    expect(describeWindow(7 * 86_400_000)).to.equal("7d");
    expect(describeWindow(1_800_000)).to.equal("30m");
  });

  it("draws the seed's box table, the TOTAL row spanning cost and latency", function () {
    const text = boxTable(
      ["Provider", "Requests", "AGPT Cost", "Latency"],
      [
        { cells: ["OpenAI", "12,891", "182.34", "423ms"] },
        { cells: ["Groq", "8,214", "49.27", "19ms"] },
        { cells: ["TOTAL", "21,105", "231.61 AGPT"], span: 2, ruleAbove: true },
      ],
      [17, 11, 11, 11],
    );
    expect(text).to.equal(
      [
        "┌─────────────────┬───────────┬───────────┬───────────┐",
        "│ Provider        │ Requests  │ AGPT Cost │ Latency   │",
        "├─────────────────┼───────────┼───────────┼───────────┤",
        "│ OpenAI          │ 12,891    │ 182.34    │ 423ms     │",
        "│ Groq            │ 8,214     │ 49.27     │ 19ms      │",
        "├─────────────────┼───────────┼───────────┼───────────┤",
        "│ TOTAL           │ 21,105    │ 231.61 AGPT           │",
        "└─────────────────┴───────────┴───────────────────────┘",
      ].join("\n"),
    );
  });
});

describe("monitor: the report from a snapshot", function () {
  const line = (index: number, user: string, provider: string, model: string, routes: string[], requests: number, amount: bigint, latency: number): RowLine => ({
    index,
    user,
    provider,
    model,
    routes,
    requests,
    amountMilli: amount * 1000n - 999n, // a row charges ceil(milli / 1000): amount units
    latencyMsTotal: latency,
    amount,
  });
  const lines: BatchLines = {
    batchId: "0xaa",
    chain: "c",
    sealedAt: 1_700_000_000_000,
    callsFrom: 1_699_996_400,
    rows: [
      line(0, ALICE, "openai", "gpt-4-turbo", ["mission_critical", "premium"], 3, 300n, 1200),
      line(1, ALICE, "groq", "mixtral-8x22b", ["cost_optimized"], 2, 40n, 40),
      line(2, BOB, "openai", "gpt-4-turbo", ["mission_critical"], 4, 500n, 2000),
      line(3, BOB, "groq", "mixtral-8x22b", ["cost_optimized"], 1, 7n, 20),
    ],
    requests: 10,
    amount: 847n,
  };
  const settled = (batchId: string, overrides: Partial<SettledBatch>): SettledBatch => ({
    batchId,
    txHash: `0x${"11".repeat(32)}`,
    block: 10,
    settledAt: 1_700_000_100,
    acceptedRows: 3,
    rejectedRows: 1,
    escrowed: 800n,
    releaseAt: 1_700_003_700,
    callsFrom: 1_699_996_400,
    dataCid: "bafy",
    rejected: new Map(),
    disputes: new Map(),
    released: null,
    ...overrides,
  });
  // Row 3 rejected; row 1 disputed and resolved (refund 10); row 2 disputed, open. A second batch has no file.
  const batch = settled("0xaa", {
    rejected: new Map([[3, "OverDailyCap"]]),
    escrowed: 840n,
    disputes: new Map([
      [1, { disputeId: "0xd1", index: 1, payer: ALICE, amount: 40n, bond: 1n, openedTx: "0x", resolved: { refund: 10n, toProvider: 30n, tx: "0x", expired: false } }],
      [2, { disputeId: "0xd2", index: 2, payer: BOB, amount: 500n, bond: 1n, openedTx: "0x", resolved: null }],
    ]),
  });
  const orphan = settled("0xbb", { escrowed: 1000n, acceptedRows: 2, rejectedRows: 0, settledAt: 1_700_000_200, released: { amount: 1000n, tx: "0x", block: 12 } });
  const chain: ChainSnapshot = {
    name: "c",
    chainId: 1,
    router: "0xr",
    window: { head: 20, headTime: 1_700_000_300, fromBlock: 1, fromTime: 1_699_913_900 },
    settled: [
      { batch, lines },
      { batch: orphan, lines: null },
    ],
    pending: {
      ingest: { chunks: 1, chunksRead: 1, oldestAt: 1_700_000_250_000, lines: receiptLines([receipt(ALICE, "openai", "gpt-4-turbo", 1000, { route: "mission_critical", amountMilli: "1500" })]) },
      pool: { oldestAt: null, lines: [] },
      batches: [],
    },
    models: [
      { id: 1, name: "gpt-4-turbo", maxPricePer1k: 1n, dailyLimit: 1000n, spentToday: 840n, left: 160n },
      { id: 2, name: "mixtral-8x22b", maxPricePer1k: 1n, dailyLimit: 0n, spentToday: 40n, left: null },
    ],
    payouts: { escrowed: 300n, releasable: 540n, releasableBatches: 1, released: 1000n, withdrawn: 25n },
    stats: {},
    error: null,
    offline: false,
  };
  const snapshot: Snapshot = {
    takenAt: 1_700_000_300_000,
    windowMs: 86_400_000,
    token: TOKEN,
    chains: [chain],
    unbillable: Object.fromEntries(UNBILLABLE_REASONS.map((reason) => [reason, 0])) as Record<UnbillableReason, number>,
  };

  it("keeps pending, disputed, rejected and refunded amounts out of the settled cost", function () {
    const report = buildReport(snapshot, { granularity: "provider" });
    const g = Object.fromEntries(report.groups.map((group) => [group.key, group]));
    expect(g["openai"]!.settled).to.deep.equal({ requests: 3, amount: 300n, latencyMsTotal: 1200 });
    expect(g["openai"]!.inDispute).to.deep.equal({ rows: 1, requests: 4, amount: 500n });
    expect(g["openai"]!.pending).to.deep.equal({ requests: 1, amountMilli: 1500n });
    expect(g["groq"]!.settled).to.deep.equal({ requests: 2, amount: 30n, latencyMsTotal: 40 });
    expect(g["groq"]!.refunded).to.equal(10n);
    expect(g["groq"]!.rejected).to.deep.equal({ rows: 1, requests: 1, amount: 7n, reasons: { OverDailyCap: 1 } });
    expect(g[NO_BATCH_FILE]!.settled.amount).to.equal(1000n);
    expect(report.total.settled.amount).to.equal(1330n);
    expect(report.unattributedBatches).to.equal(1);
    expect(report.escrow).to.deep.equal({ escrowed: 1840n, held: 300n, released: 1000n, inDispute: 500n, disputePaid: 30n, refunded: 10n });
    const e = report.escrow;
    expect(e.held + e.released + e.inDispute + e.disputePaid + e.refunded).to.equal(e.escrowed);
    expect(report.budget).to.deep.include({ kind: "models", remaining: 160n });
    expect(report.date).to.equal("14-NOV-2023");
    expect(report.series.bucketMs).to.equal(1_800_000);
    expect(report.series.total.amount.reduce((sum, a) => sum + a, 0n)).to.equal(1330n);
    expect(report.batches.map((b) => b.batchId)).to.deep.equal(["0xbb", "0xaa"]);
    expect(report.batches[1]).to.deep.include({ state: "escrowed", inDispute: 500n, requests: 10, callsFrom: 1_699_996_400 });
  });

  it("reports batches the router refused for good (receipts root already settled), apart from pending and settled", function () {
    const refusedChain: ChainSnapshot = { ...chain, stats: { batches_refused: 2, receipts_refused: 7 } };
    const report = buildReport({ ...snapshot, chains: [refusedChain] }, { granularity: "provider" });
    expect(report.queue.refused).to.deep.equal({ batches: 2, receipts: 7 });
    expect(report.total.settled.amount).to.equal(1330n); // nothing of them counted as settled
    expect(report.total.pending.requests).to.equal(1); // nor as pending
    expect(renderReport(report, snapshot.takenAt)).to.include("Refused: 2 batches of 7 requests not settled: another batch had settled the same receipts root");
    expect(buildReport(snapshot, { granularity: "provider" }).queue.refused).to.deep.equal({ batches: 0, receipts: 0 });
    expect(renderReport(buildReport(snapshot, { granularity: "provider" }), snapshot.takenAt)).to.not.include("Refused:");
  });

  it("shows Pending rounded to the display precision (6 decimals), not the 21 of thousandths of a unit", function () {
    // 0.123456789012345678901 AGPT priced (a response_cost route gives any digits), not yet settled
    const odd = receiptLines([receipt(ALICE, "openai", "gpt-4-turbo", 1000, { route: "mission_critical", amountMilli: "123456789012345678901" })]);
    const pendingChain: ChainSnapshot = { ...chain, pending: { ...chain.pending, ingest: { ...chain.pending.ingest, lines: odd } } };
    const text = renderReport(buildReport({ ...snapshot, chains: [pendingChain] }, { granularity: "provider" }), snapshot.takenAt);
    expect(text).to.include("Pending: 1 requests, 0.123457 AGPT priced");
    expect(text).to.match(/│ openai\s+│ 0\.123457 · 1 req/);
    expect(text).to.not.include("0.123456789");
    expect(formatMilliRounded(1500n, 18)).to.equal("<0.000001");
    expect(formatMilliRounded(0n, 18)).to.equal("0");
    expect(formatMilliRounded(2_499_999_999_999_999_999_999n, 18)).to.equal("2.5");
    expect(formatMilliRounded(12_345_499n, 2)).to.equal("123.45"); // a token with 2 decimals keeps them
  });

  it("shows escrowed, releasable, released and withdrawn apart, per chain's token", function () {
    const report = buildReport(snapshot, { granularity: "provider" });
    expect(report.payouts).to.deep.equal([{ chain: "c", token: "AGPT", escrowed: 300n, releasable: 540n, releasableBatches: 1, released: 1000n, withdrawn: 25n }]);
    const text = renderReport(report, snapshot.takenAt);
    expect(text).to.match(/│ Payouts\s+│ Escrowed\s+│ Releasable\s+│ Released\s+│ Withdrawn \(24h\)\s+│/);
    expect(text).to.match(/│ AGPT on c\s+│ 0\.0000000000000003\s+│ 0\.00000000000000054 · 1 batch\s+│ 0\.000000000000001\s+│ 0\.000000000000000025\s+│/);
  });

  it("groups by route (a row priced by two routes stays whole), and filters one payer", function () {
    const byRoute = buildReport(snapshot, { granularity: "route" });
    expect(byRoute.groups.map((group) => group.key)).to.include.members(["mission_critical+premium", "cost_optimized", "mission_critical"]);
    expect(byRoute.groups.find((group) => group.key === "mission_critical+premium")!.settled.amount).to.equal(300n);
    const alice = buildReport(snapshot, { granularity: "model", user: ALICE.toLowerCase() });
    expect(alice.groups.map((group) => [group.key, group.settled.amount])).to.deep.equal([
      ["gpt-4-turbo", 300n],
      ["mixtral-8x22b", 30n],
    ]);
    expect(alice.total.pending.amountMilli).to.equal(1500n);
    expect(alice.unattributedBatches).to.equal(1); // counted, but a batch without its file cannot be split by payer
    expect(alice.groups.some((group) => group.key === NO_BATCH_FILE)).to.equal(false);
  });
});

describe("monitor: the relayer's state in Redis", function () {
  let redis: Redis;
  let prefix: string;
  beforeEach(function () {
    redis = testRedis();
    prefix = uniquePrefix("mon");
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });

  it("counts each receipt once: in ingest's queue, in the batcher's pool (also while its chunk is not yet acknowledged), or in a sealed batch", async function () {
    const store = new ReceiptStore(redis, { prefix, dedupeTtlMs: 86_400_000 });
    const pool = new BatchPool(redis, { prefix, chain: "local" });
    const settlement = new SettlementStore(redis, prefix, "local");
    const receipts = Array.from({ length: 6 }, (_, i) => receipt(ALICE, "openai", "gpt-4-turbo", 100 * (i + 1)));
    const result = await store.submit(
      receipts.map((r) => {
        const { id, ...body } = r;
        return { kind: "receipt" as const, key: id, fingerprint: "0123456789abcdef", body };
      }),
    );
    expect(result.chunks).to.have.length(1);
    const queued = (await store.readChunk(result.chunks[0]!.chunkId))!;

    // The batcher took four (its chunk not acknowledged yet) and sealed two of them into a registered batch.
    await pool.take(queued.slice(0, 4), 3600);
    const sealing = (await pool.seal(2, 3600))!;
    await pool.register(sealing, { batchId: `0x${"cd".repeat(32)}`, cid: "bafy-test", path: "/x", receipts: 2, rows: 1, amount: "123" });

    const state = await readRelayerState("local", { redis, receipts: store, pool, settlement });
    const ids = (list: readonly Receipt[]) => list.map((r) => r.id).sort();
    expect(ids(state.ingest.receipts)).to.deep.equal(ids(queued.slice(4)));
    expect(ids(state.pool.receipts)).to.deep.equal(ids(queued.filter((r) => !sealing.ids.includes(r.id)).slice(0, 2)));
    expect(state.batches).to.have.length(1);
    expect(state.batches[0]).to.deep.include({ batchId: `0x${"cd".repeat(32)}`, state: "sealed", receipts: 2, amount: 123n, cid: "bafy-test" });
    expect(state.ingest).to.deep.include({ chunks: 1, chunksRead: 1 });
    const counted = state.ingest.receipts.length + state.pool.receipts.length + state.batches[0]!.receipts;
    expect(counted).to.equal(receipts.length);
  });
});

describe("monitor: the router's events, read incrementally", function () {
  it("reads only new blocks, starts over when the chain was rewritten, and keeps to the window", async function () {
    const suite = await networkHelpers.loadFixture(async function monitorSuite() {
      return deploySuite(ethers);
    });
    const [a, b] = suite.payers.map((payer) => payer.address);
    let getLogsCalls: Array<[number, number]> = [];
    const provider = new Proxy(ethers.provider, {
      get(target, property, receiver) {
        if (property === "getLogs") {
          return (filter: { fromBlock: number; toBlock: number }) => {
            getLogsCalls.push([filter.fromBlock, filter.toBlock]);
            return target.getLogs(filter);
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const events = new RouterEvents(provider, suite.routerAddress, { reorgDepth: 2 });

    await suite.router.connect(suite.payers[1]!).setDailyCap(1n);
    const first = await settle(suite, [row(a!, suite.openai, suite.gpt4, 1000n, GPT4_PRICE), row(b!, suite.openai, suite.gpt4, 2000n, GPT4_PRICE)]);
    let window = await events.read(3_600_000);
    expect(window.batches.map((x) => x.batchId)).to.deep.equal([first.batchId]);
    expect([...window.batches[0]!.rejected]).to.deep.equal([[1, "OverDailyCap"]]);
    expect(window.batches[0]!.escrowed).to.equal(first.escrowed);

    const snapshot = await networkHelpers.takeSnapshot();
    const second = await settle(suite, [row(a!, suite.openai, suite.gpt4, 3000n, GPT4_PRICE)]);
    const headBefore = window.head;
    getLogsCalls = [];
    window = await events.read(3_600_000);
    expect(window.batches.map((x) => x.batchId)).to.deep.equal([first.batchId, second.batchId]);
    expect(getLogsCalls).to.deep.equal([[headBefore - 1, window.head]]); // the new blocks and the reorg margin only

    await snapshot.restore(); // the second batch's block is gone; another batch takes its height
    const third = await settle(suite, [row(a!, suite.openai, suite.gpt4, 4000n, GPT4_PRICE)], { batchId: `0x${"77".repeat(32)}` });
    await networkHelpers.mine(3);
    getLogsCalls = [];
    window = await events.read(3_600_000);
    expect(window.batches.map((x) => x.batchId)).to.deep.equal([first.batchId, third.batchId]);
    expect(getLogsCalls[0]![0]).to.equal(window.fromBlock); // read again from the window's start

    await networkHelpers.time.increase(7200);
    const fourth = await settle(suite, [row(a!, suite.openai, suite.gpt4, 5000n, GPT4_PRICE)]);
    window = await events.read(3_600_000);
    expect(window.batches.map((x) => x.batchId)).to.deep.equal([fourth.batchId]);
    expect(window.fromTime).to.equal(window.headTime - 3600);
  });
});

describe("monitor: interval disputes from the router's events", function () {
  it("splits a dispute's refund over its held rows exactly: each row's parts add up to it, the rows' to the refund", function () {
    expect(splitRefund(0n, [5n, 7n])).to.deep.equal([0n, 0n]);
    expect(splitRefund(12n, [5n, 7n])).to.deep.equal([5n, 7n]);
    expect(splitRefund(10n, [3n, 3n, 3n, 1n])).to.deep.equal([3n, 3n, 3n, 1n]);
    const shares = splitRefund(7n, [3n, 3n, 3n]); // floor 2 each, one unit left over: to the first row
    expect(shares).to.deep.equal([3n, 2n, 2n]);
    for (const [refund, amounts] of [[1n, [1n, 1n, 1n]], [999n, [1000n, 1n, 7n]], [5n, [2n, 9n]]] as const) {
      const split = splitRefund(refund, amounts);
      expect(split.reduce((x, y) => x + y, 0n)).to.equal(refund);
      split.forEach((share, i) => expect(share <= amounts[i]! && share >= 0n).to.equal(true));
    }
    expect(() => splitRefund(13n, [5n, 7n])).to.throw(RangeError);
  });

  it("holds rows of two batches under one dispute id, splits its refund over them, and reads an expired dispute as a standing charge", async function () {
    const suite = await networkHelpers.loadFixture(async function intervalSuite() {
      return deploySuite(ethers);
    });
    const [a, b] = suite.payers;
    const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
    const bucket = await suite.router.usageBucket();
    const callsFrom = now - (now % bucket);
    const first = await settle(suite, [row(a!.address, suite.openai, suite.gpt4, 1000n, GPT4_PRICE), row(b!.address, suite.openai, suite.gpt4, 2000n, GPT4_PRICE)], { callsFrom });
    const second = await settle(suite, [row(a!.address, suite.groq, suite.mixtral, 900n, MIXTRAL_PRICE), row(a!.address, suite.openai, suite.gpt4, 3000n, GPT4_PRICE)], { callsFrom });
    const events = new RouterEvents(ethers.provider, suite.routerAddress);

    // payer a's gpt-4-turbo interval: row 0 of the first batch and row 1 of the second, one dispute
    const gptId = await nextDisputeId(suite, a!.address, suite.openai, suite.gpt4, callsFrom);
    await suite.router.connect(a!).dispute(rowRefs([[first, 0], [second, 1]]));
    const mixtralId = await nextDisputeId(suite, a!.address, suite.groq, suite.mixtral, callsFrom);
    await suite.router.connect(a!).dispute(rowRefs([[second, 0]]));
    let window = await events.read(86_400_000);
    const [one, two] = window.batches;
    expect(one!.callsFrom).to.equal(Number(callsFrom));
    expect(two!.callsFrom).to.equal(Number(callsFrom));
    expect([...one!.disputes.keys()]).to.deep.equal([0]);
    expect([...two!.disputes.keys()].sort()).to.deep.equal([0, 1]);
    expect(one!.disputes.get(0)).to.include({ disputeId: gptId.toLowerCase(), amount: first.charges[0]!.amount, resolved: null });
    expect(two!.disputes.get(1)).to.include({ disputeId: gptId.toLowerCase(), amount: second.charges[1]!.amount, resolved: null });
    expect(two!.disputes.get(0)).to.include({ disputeId: mixtralId.toLowerCase(), amount: second.charges[0]!.amount });

    // governance finds 1,234 of the 4,000 held tokens overbilled: the contract refunds held * 1234 / 4000
    const held = first.charges[0]!.amount + second.charges[1]!.amount;
    const refund = (held * 1234n) / 4000n;
    await suite.router.connect(suite.admin).resolveDispute(gptId, 1234n);
    window = await events.read(86_400_000);
    const rows = [window.batches[0]!.disputes.get(0)!, window.batches[1]!.disputes.get(1)!];
    expect(rows.reduce((sum, r) => sum + r.resolved!.refund, 0n)).to.equal(refund);
    for (const r of rows) {
      expect(r.resolved!.refund + r.resolved!.toProvider).to.equal(r.amount);
      expect(r.resolved!.expired).to.equal(false);
    }
    expect(window.batches[1]!.disputes.get(0)!.resolved).to.equal(null); // the other interval is still open

    // nobody judges the mixtral dispute: after its governance deadline anyone settles it, the charge stands
    const info = await suite.router.disputeInfo(mixtralId);
    await networkHelpers.time.increaseTo(info.governanceDeadline);
    await suite.router.connect(suite.stranger).settleExpiredDispute(mixtralId);
    window = await events.read(30 * 86_400_000);
    const expired = window.batches[1]!.disputes.get(0)!;
    expect(expired.resolved).to.deep.include({ refund: 0n, toProvider: second.charges[0]!.amount, expired: true });
  });
});
