/**
 * The spread key layout (Redis Cluster: ingest keys over many hash tags, a POST in three steps) on the local Redis,
 * forced with `shards`: it answers exactly as the single-tag layout does, and a POST that dies between its steps
 * loses nothing and bills nothing twice.
 */
import { expect } from "chai";
import type { Redis } from "ioredis";

import {
  IngestKeys,
  QueueUnavailableError,
  ReceiptStore,
  STAGE_RECOVERY_MARGIN_MS,
  STAGE_WINDOW_MS,
  type Receipt,
  type ReceiptBody,
  type Submission,
  type UnbillableBody,
} from "../../../relayer/queue/index.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

const PAYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const DAY = 86_400_000;
const fp = (n: number) => n.toString(16).padStart(16, "0");

function body(chain: string, tokens: number, startTime = 1718035200412): ReceiptBody {
  const milli = BigInt(tokens) * 120_000_000_000_000_000n;
  return {
    v: 1, chain, payer: PAYER, provider: "openai", model: "gpt-4-turbo", route: "r", promptTokens: tokens, completionTokens: 0, tokens,
    amountMilli: milli.toString(), amount: ((milli + 999n) / 1000n).toString(), pricing: "per_1k_tokens", pricePer1k: "120000000000000000",
    responseCostUsd: null, capped: false, startTime, endTime: startTime + 100, latencyMs: 100, cacheHit: false, litellmCallId: null,
    litellmId: "x", litellmModel: "openai/gpt-4-turbo", modelGroup: null, litellmProvider: "openai", callType: null, keyAlias: null, keyHash: null,
    userId: null, teamId: null, endUserId: null, traceId: null, receivedAt: 1718035210000,
  };
}

const receipt = (key: string, chain: string, tokens: number, fingerprint = fp(1), startTime?: number): Submission => ({
  kind: "receipt",
  key,
  fingerprint,
  ...(startTime === undefined ? {} : { startTime }),
  body: body(chain, tokens, startTime),
});

function unbillable(key: string, reason: UnbillableBody["reason"], fingerprint = fp(1), startTime?: number): Submission {
  return {
    kind: "unbillable", key, fingerprint, ...(startTime === undefined ? {} : { startTime }),
    body: {
      v: 1, key, fingerprint, reason, detail: reason, receivedAt: 1718035210000,
      summary: { litellmProvider: "openai", litellmModel: "m", modelGroup: null, keyAlias: null, tokens: 1, responseCostUsd: null },
      log: { key },
    },
  };
}

/** POSTs that exercise every outcome: new, re-sent, disagreeing, unbillable then billable, a reused id. */
const POSTS: Submission[][] = [
  [receipt("a", "arbitrum", 10), receipt("b", "polygon", 20), unbillable("u1", "no_payer"), receipt("c", "arbitrum", 30, fp(1), 1000)],
  [receipt("a", "arbitrum", 10), receipt("b", "polygon", 99, fp(2)), receipt("u1", "arbitrum", 5, fp(3)), receipt("c", "arbitrum", 31, fp(4), 5000)],
  [receipt("c", "arbitrum", 31, fp(4), 5001), unbillable("u2", "zero_usage"), unbillable("u2", "no_payer"), ...Array.from({ length: 40 }, (_, i) => receipt(`k${i}`, i % 2 ? "arbitrum" : "polygon", i + 1))],
  Array.from({ length: 40 }, (_, i) => receipt(`k${i}`, "arbitrum", i + 1)),
];

async function allPending(store: ReceiptStore, chain: string): Promise<Receipt[]> {
  const out: Receipt[] = [];
  for (const { chunkId } of await store.pendingChunks(chain)) out.push(...((await store.readChunk(chunkId)) ?? []));
  return out.sort((x, y) => x.id.localeCompare(y.id));
}

describe("ReceiptStore on the spread (Cluster) layout", function () {
  let redis: Redis;
  const prefixes: string[] = [];
  const store = (shards: number | null) => {
    const prefix = uniquePrefix("shard");
    prefixes.push(prefix);
    return new ReceiptStore(redis, { prefix, dedupeTtlMs: 32 * DAY, shards });
  };

  before(() => {
    redis = testRedis();
  });
  after(async () => {
    for (const prefix of prefixes) await dropPrefix(redis, prefix);
    await redis.quit();
  });

  it("answers every POST as the single-tag layout does: outcomes, ids, receipts, stats, conflicts, unbillable records", async function () {
    const single = store(null);
    const spread = store(16);
    for (const post of POSTS) {
      const [a, b] = [await single.submit(post), await spread.submit(post)];
      expect(b.outcomes).to.deep.equal(a.outcomes);
      expect(b.chunks.map(({ chain, count }) => ({ chain, count }))).to.deep.equal(a.chunks.map(({ chain, count }) => ({ chain, count })));
    }
    for (const chain of ["arbitrum", "polygon"]) {
      expect(await allPending(spread, chain)).to.deep.equal(await allPending(single, chain));
      expect(await spread.pendingCount(chain)).to.equal(await single.pendingCount(chain));
    }
    expect(await spread.stats()).to.deep.equal(await single.stats());
    const strip = (records: Array<{ at: number }>) => records.map(({ at: _at, ...rest }) => rest).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
    expect(strip(await spread.listConflicts())).to.deep.equal(strip(await single.listConflicts()));
    expect(await spread.conflictCount()).to.equal(2);
    expect(await spread.unbillableCounts()).to.deep.equal(await single.unbillableCounts());
    expect((await spread.listUnbillable("no_payer")).map((r) => r.key)).to.deep.equal((await single.listUnbillable("no_payer")).map((r) => r.key));
    // the records really are spread: more than one tag holds dedupe records
    const tags = new Set<string>();
    for await (const page of spread.dedupeIds()) for (const { id } of page) tags.add(spread.layout.ofCall(id.split("#")[0]!).tag);
    expect(tags.size).to.be.greaterThan(8);
  });

  it("a POST that died after recording its dedupe records is committed by recovery, once; its re-send is all duplicates", async function () {
    const spread = store(16);
    const post = Array.from({ length: 30 }, (_, i) => receipt(`d${i}`, "arbitrum", i + 1));
    // the process dies between step 2 (records) and step 3 (commit)
    const commit = spread.redis.agentgptIngestCommit.bind(spread.redis);
    spread.redis.agentgptIngestCommit = (() => Promise.reject(new Error("connection lost"))) as typeof commit;
    let failed: unknown;
    await spread.submit(post).catch((error: unknown) => (failed = error));
    expect(failed).to.be.instanceOf(QueueUnavailableError);
    spread.redis.agentgptIngestCommit = commit;
    expect(await spread.pendingCount("arbitrum")).to.equal(0);

    // LiteLLM re-sends: every receipt is already recorded (in the staged chunk)
    const again = await spread.submit(post);
    expect(again.outcomes.every(({ outcome }) => outcome === "duplicate")).to.equal(true);
    expect(again.chunks).to.deep.equal([]);

    // not before the window has passed
    expect(await spread.recoverStaged("arbitrum")).to.deep.equal([]);
    const later = Date.now() + STAGE_WINDOW_MS + STAGE_RECOVERY_MARGIN_MS + 1000;
    const recovered = await spread.recoverStaged("arbitrum", later);
    expect(recovered.map(({ count }) => count)).to.deep.equal([30]);
    expect((await allPending(spread, "arbitrum")).map((r) => r.id).sort()).to.deep.equal(post.map((s) => s.key).sort());
    expect(await spread.recoverStaged("arbitrum", later)).to.deep.equal([]);
    expect((await spread.stats()).chains["arbitrum"]).to.deep.equal({ queued: 30, chunks: 1, acked: 0 });
  });

  it("recovery keeps exactly the receipts whose record names the chunk (derived ids included), when only some shards ran", async function () {
    const spread = store(16);
    await spread.submit([receipt("r0", "arbitrum", 1, fp(1), 1000)]);
    const post = [receipt("r0", "arbitrum", 2, fp(2), 9000), ...Array.from({ length: 30 }, (_, i) => receipt(`p${i}`, "arbitrum", i + 1))];
    // only the shards that run first get through; the rest fail (a master lost mid-POST)
    const submit = spread.redis.agentgptIngestSubmitStaged.bind(spread.redis);
    let calls = 0;
    spread.redis.agentgptIngestSubmitStaged = ((...args: Parameters<typeof submit>) => (++calls % 2 === 0 ? Promise.reject(new Error("node down")) : submit(...args))) as typeof submit;
    await spread.submit(post).then(
      () => expect.fail("the POST must fail"),
      (error: unknown) => expect(error).to.be.instanceOf(QueueUnavailableError),
    );
    spread.redis.agentgptIngestSubmitStaged = submit;
    const recorded = (await spread.dedupeRecords(post.map((s) => s.key))).filter((r) => r !== null).length;
    expect(recorded).to.be.greaterThan(0).and.lessThan(post.length);

    const retry = await spread.submit(post);
    await spread.recoverStaged("arbitrum", Date.now() + STAGE_WINDOW_MS + STAGE_RECOVERY_MARGIN_MS + 1000);
    const ids = (await allPending(spread, "arbitrum")).map((r) => r.id);
    // every receipt of the POST once (r0#9000 is another call reusing r0), r0 itself once (its own chunk)
    expect(ids.filter((id) => id !== "r0").sort()).to.deep.equal(["r0#9000", ...post.slice(1).map((s) => s.key)].sort());
    expect(ids.filter((id) => id === "r0")).to.have.length(1);
    expect(new Set(ids).size).to.equal(ids.length);
    expect(retry.outcomes.filter(({ outcome }) => outcome === "queued").length).to.equal(post.length - recorded);
  });

  it("a shard script re-sent after a lost reply reads its own records as queued (the receipts stay billed once)", async function () {
    const spread = store(4);
    const submit = spread.redis.agentgptIngestSubmitStaged.bind(spread.redis);
    // every shard script runs twice, the first reply lost (ioredis re-sends a command whose connection dropped)
    spread.redis.agentgptIngestSubmitStaged = (async (...args: Parameters<typeof submit>) => {
      await submit(...args);
      return submit(...args);
    }) as typeof submit;
    const post = Array.from({ length: 20 }, (_, i) => receipt(`s${i}`, "polygon", i + 1, fp(1), 1000 + i));
    const result = await spread.submit(post);
    spread.redis.agentgptIngestSubmitStaged = submit;
    expect(result.outcomes.map(({ outcome }) => outcome)).to.deep.equal(post.map(() => "queued"));
    expect((await allPending(spread, "polygon")).map((r) => r.id).sort()).to.deep.equal(post.map((s) => s.key).sort());
  });

  it("a shard script past its deadline writes nothing; the empty staged chunk is dropped by recovery", async function () {
    const spread = store(4);
    const stage = spread.redis.agentgptIngestStage.bind(spread.redis);
    // staged "long ago": every shard's deadline has passed
    spread.redis.agentgptIngestStage = (async (...args: Parameters<typeof stage>) => Number(await stage(...args)) - 10 * STAGE_WINDOW_MS) as typeof stage;
    const post = [receipt("e1", "arbitrum", 1), receipt("e2", "arbitrum", 2)];
    await spread.submit(post).then(
      () => expect.fail("the POST must fail"),
      (error: unknown) => expect(error).to.be.instanceOf(QueueUnavailableError),
    );
    spread.redis.agentgptIngestStage = stage;
    expect(await spread.dedupeRecords(["e1", "e2"])).to.deep.equal([null, null]);
    expect((await spread.submit(post)).outcomes.map(({ outcome }) => outcome)).to.deep.equal(["queued", "queued"]);
    expect(await spread.recoverStaged("arbitrum", Date.now() + STAGE_WINDOW_MS + STAGE_RECOVERY_MARGIN_MS + 1000)).to.deep.equal([]);
    let staged = 0;
    for (const keys of spread.layout.all) staged += await redis.zcard(keys.staged("arbitrum"));
    expect(staged).to.equal(0);
    expect(await allPending(spread, "arbitrum")).to.have.length(2);
  });

  it("refuses to work with another shard count than the keys were written with", async function () {
    const first = store(16);
    await first.submit([receipt("x", "arbitrum", 1)]);
    const other = new ReceiptStore(redis, { prefix: first.options.prefix, dedupeTtlMs: DAY, shards: 32 });
    await other.submit([receipt("x", "arbitrum", 1)]).then(
      () => expect.fail("must refuse"),
      (error: unknown) => expect((error as Error).message).to.match(/redis\.shards: 16, this process has 32/),
    );
    expect(new IngestKeys(first.options.prefix).layout).to.equal(`{${first.options.prefix}:ingest}:layout`);
  });
});
