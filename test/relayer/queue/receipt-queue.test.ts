/**
 * ReceiptQueue and ReceiptStore against a real Redis: exactly-once recording, chunk jobs, crash recovery, the
 * consumer contract, unbillable records, and failing fast while Redis is down.
 */
import { expect } from "chai";
import type { Worker } from "bullmq";
import type { Redis } from "ioredis";

import {
  connectRedis,
  createProducerRedis,
  createReceiptWorker,
  createWorkerRedis,
  IngestKeys,
  prepareSubmissions,
  QueueUnavailableError,
  RECEIPT_BODY_FIELDS,
  readReceiptRows,
  ReceiptQueue,
  RECEIPTS_JOB_NAME,
  type Receipt,
  type ReceiptBody,
  type RedisClient,
  type Submission,
  type UnbillableBody,
  UNBILLABLE_REASONS,
} from "../../../relayer/queue/index.js";
import { CHUNK_ROWS_MARKER } from "../../../relayer/queue/scripts.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { TcpProxy } from "./tcp-proxy.js";

const PAYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const HOUR = 3_600_000;

function body(chain: string, tokens: number, overrides: Partial<ReceiptBody> = {}): ReceiptBody {
  const milli = BigInt(tokens) * 120_000_000_000_000_000n;
  return {
    v: 1,
    chain,
    payer: PAYER,
    provider: chain === "polygon" ? "anthropic" : "openai",
    model: "gpt-4-turbo",
    route: "mission_critical",
    promptTokens: tokens,
    completionTokens: 0,
    tokens,
    amountMilli: milli.toString(),
    amount: ((milli + 999n) / 1000n).toString(),
    pricing: "per_1k_tokens",
    pricePer1k: "120000000000000000",
    responseCostUsd: null,
    capped: false,
    startTime: 1718035200412,
    endTime: 1718035207982,
    latencyMs: 7570,
    cacheHit: false,
    litellmCallId: null,
    litellmId: "chatcmpl-x",
    litellmModel: "openai/gpt-4-turbo",
    modelGroup: "gpt-4-turbo",
    litellmProvider: "openai",
    callType: "acompletion",
    keyAlias: "prod-backend",
    keyHash: null,
    userId: null,
    teamId: null,
    endUserId: null,
    traceId: null,
    receivedAt: 1718035210000,
    ...overrides,
  };
}

const fp = (n: number) => n.toString(16).padStart(16, "0");

function receiptSubmission(key: string, chain: string, tokens: number, fingerprint = fp(1)): Submission {
  return { kind: "receipt", key, fingerprint, body: body(chain, tokens) };
}

function unbillableSubmission(key: string, reason: UnbillableBody["reason"], fingerprint = fp(1)): Submission {
  return {
    kind: "unbillable",
    key,
    fingerprint,
    body: {
      v: 1,
      key,
      fingerprint,
      reason,
      detail: `because ${reason}`,
      receivedAt: 1718035210000,
      summary: { litellmProvider: "openai", litellmModel: "openai/gpt-4-turbo", modelGroup: "gpt-4-turbo", keyAlias: "x", tokens: 10, responseCostUsd: null },
      log: { key },
    },
  };
}

async function pendingReceipts(queue: ReceiptQueue, chain: string): Promise<Receipt[]> {
  const out: Receipt[] = [];
  for (const { chunkId } of await queue.store.pendingChunks(chain)) out.push(...((await queue.store.readChunk(chunkId)) ?? []));
  return out;
}

describe("relayer/queue ReceiptQueue", function () {
  this.timeout(30_000);
  let redis: Redis;
  let producer: RedisClient;
  let prefix: string;
  let queue: ReceiptQueue;

  beforeEach(async function () {
    prefix = uniquePrefix("queue");
    redis = testRedis();
    producer = createProducerRedis(REDIS_URL);
    await connectRedis(producer, REDIS_URL);
    queue = new ReceiptQueue({
      connection: producer,
      prefix,
      chains: ["arbitrum", "polygon"],
      dedupeTtlMs: 32 * 24 * HOUR,
      jobOptions: { backoff: { type: "fixed", delay: 50 } },
    });
  });

  afterEach(async function () {
    await queue.close();
    await producer.quit();
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });

  it("keeps a chunk's receipts as rows under one header (field names once per chunk), and still reads a chunk of receipt objects", async function () {
    const result = await queue.add([receiptSubmission("r1", "arbitrum", 100), receiptSubmission("r2", "arbitrum", 200)]);
    const chunkId = result.chunks[0]!.chunkId;
    // on the single layout the hash holds a marker and the rows are a string of their own (see scripts.ts)
    expect(await redis.hget(new IngestKeys(prefix).chunk(chunkId), "r")).to.equal(CHUNK_ROWS_MARKER);
    const stored = (await redis.get(new IngestKeys(prefix).chunkRows(chunkId)))!;
    const rows = JSON.parse(stored) as unknown[][];
    expect(rows[0]).to.deep.equal(["id", ...RECEIPT_BODY_FIELDS]);
    expect(rows.slice(1).map((row) => row[0])).to.deep.equal(["r1", "r2"]);
    expect(rows[2]![RECEIPT_BODY_FIELDS.indexOf("tokens") + 1]).to.equal(200);
    // each field name is written once, not once per receipt
    expect(stored.split('"keyAlias"').length - 1).to.equal(1);
    expect(Buffer.byteLength(stored)).to.be.below(Buffer.byteLength(JSON.stringify([{ id: "r1", ...body("arbitrum", 100) }, { id: "r2", ...body("arbitrum", 200) }])));
    expect(await queue.store.readChunk(chunkId)).to.deep.equal([
      { id: "r1", ...body("arbitrum", 100) },
      { id: "r2", ...body("arbitrum", 200) },
    ]);

    // a chunk written before rows (receipt objects), still pending after an upgrade
    await redis.hset(new IngestKeys(prefix).chunk("legacy-chunk"), "r", JSON.stringify([{ id: "old", ...body("arbitrum", 7) }]), "m", "1", "d", "");
    expect(await queue.store.readChunk("legacy-chunk")).to.deep.equal([{ id: "old", ...body("arbitrum", 7) }]);
    // a header names the fields: a chunk written with fields in another order reads the same
    const reordered = ["id", ...[...RECEIPT_BODY_FIELDS].reverse()];
    const value = { id: "other-order", ...body("arbitrum", 9) } as Record<string, unknown>;
    expect(readReceiptRows(JSON.stringify([reordered, reordered.map((field) => value[field])]))).to.deep.equal([value]);
    expect(() => readReceiptRows(JSON.stringify([["id", "v"], ["x"]]))).to.throw(/row 1 .* 2 values/);
  });

  it("keeps a chunk's rows key while the chunk is pending (no TTL), drops it with the chunk, and leaves none for a chunk of duplicates", async function () {
    const keys = new IngestKeys(prefix);
    const first = await queue.add([receiptSubmission("k1", "arbitrum", 10), receiptSubmission("k2", "arbitrum", 20)]);
    const chunkId = first.chunks[0]!.chunkId;
    expect(await redis.pttl(keys.chunkRows(chunkId))).to.equal(-1);
    // the same calls again: no chunk, and no rows key left behind (only the first POST's keys are there)
    const again = await queue.add([receiptSubmission("k1", "arbitrum", 10), receiptSubmission("k2", "arbitrum", 20)]);
    expect(again.chunks).to.deep.equal([]);
    expect(await redis.keys(`${keys.chunk("")}*`)).to.have.members([keys.chunk(chunkId), keys.chunkRows(chunkId)]);
    expect(await queue.store.ack("arbitrum", chunkId)).to.equal(true);
    expect(await redis.exists(keys.chunk(chunkId), keys.chunkRows(chunkId))).to.equal(0);
    expect(await queue.store.readChunk(chunkId)).to.equal(null);
    // an earlier reader takes the marker for rows and fails loudly: it never reads such a chunk as empty
    expect(() => readReceiptRows(CHUNK_ROWS_MARKER)).to.throw(SyntaxError);
  });

  it("the submit script writes nothing when a chunk's rows key is missing (its SET failed or expired)", async function () {
    const keys = new IngestKeys(prefix);
    const store = queue.store;
    const [part] = prepareSubmissions([receiptSubmission("lost-rows", "arbitrum", 10)]);
    const chunkId = "arbitrum-test-norows";
    const scriptKeys = [keys.stats, ...UNBILLABLE_REASONS.map((reason) => keys.reasonIndex(reason)), keys.pending("arbitrum"), keys.chunk(chunkId)];
    const args = [Date.now(), 3600, UNBILLABLE_REASONS.length, 1, 1, keys.seen(""), keys.conflicts, ...UNBILLABLE_REASONS, "arbitrum", chunkId, "", Buffer.from(part!.packed)];
    const refused = await store.redis.agentgptIngestSubmit(scriptKeys.length, ...scriptKeys, ...args).then(
      () => null,
      (error: Error) => error,
    );
    expect(refused?.message).to.match(/NOROWS .*arbitrum-test-norows/);
    expect(await redis.keys(`${prefix}*`)).to.deep.equal([]);
    // with the rows key set first, the same call records the receipt
    await redis.set(keys.chunkRows(chunkId), Buffer.from(part!.chains[0]!.receipts), "PX", 60_000);
    expect(await store.redis.agentgptIngestSubmit(scriptKeys.length, ...scriptKeys, ...args)).to.equal("Qb");
    expect(await store.readChunk(chunkId)).to.have.length(1);
  });

  it("records one chunk per chain and one job per chunk; readChunk returns exactly the accepted receipts", async function () {
    const result = await queue.add([
      receiptSubmission("a", "arbitrum", 100),
      receiptSubmission("b", "polygon", 200),
      receiptSubmission("a", "arbitrum", 100), // the same call twice in one body
      receiptSubmission("c", "arbitrum", 300),
    ]);
    expect(result.outcomes).to.deep.equal([
      { id: "a", outcome: "queued" },
      { id: "b", outcome: "queued" },
      { id: "a", outcome: "duplicate" },
      { id: "c", outcome: "queued" },
    ]);
    expect(result.chunks.map((chunk) => [chunk.chain, chunk.count])).to.deep.equal([
      ["arbitrum", 2],
      ["polygon", 1],
    ]);
    expect(result.jobsDeferred).to.equal(0);

    const arbitrum = await pendingReceipts(queue, "arbitrum");
    expect(arbitrum).to.deep.equal([
      { id: "a", ...body("arbitrum", 100) },
      { id: "c", ...body("arbitrum", 300) },
    ]);
    expect(await pendingReceipts(queue, "polygon")).to.deep.equal([{ id: "b", ...body("polygon", 200) }]);

    const jobs = await queue.queue("arbitrum").getJobs(["waiting"]);
    expect(jobs.map((job) => [job.name, job.id, job.data])).to.deep.equal([
      [RECEIPTS_JOB_NAME, result.chunks[0]!.chunkId, { v: 1, chain: "arbitrum", chunkId: result.chunks[0]!.chunkId, count: 2 }],
    ]);
    expect((await queue.store.stats()).chains).to.deep.equal({
      arbitrum: { queued: 2, chunks: 1, acked: 0 },
      polygon: { queued: 1, chunks: 1, acked: 0 },
    });
  });

  it("a re-send is a duplicate; a reused key on another call (start time) is a new receipt under key#start", async function () {
    const at = (startTime: number, submission: Submission): Submission => ({ ...submission, startTime });
    await queue.add([at(1000, receiptSubmission("k", "arbitrum", 100, fp(1)))]);
    const again = await queue.add([
      at(1001, receiptSubmission("k", "arbitrum", 100, fp(1))), // the same call: its start time within 1 ms
      at(5000, receiptSubmission("k", "arbitrum", 999, fp(2))), // another call with the same key
    ]);
    expect(again.outcomes).to.deep.equal([
      { id: "k", outcome: "duplicate" },
      { id: "k#5000", outcome: "queued" },
    ]);
    const third = await queue.add([at(4999, receiptSubmission("k", "arbitrum", 999, fp(2)))]);
    expect(third.outcomes).to.deep.equal([{ id: "k#5000", outcome: "duplicate" }]);
    expect(third.chunks).to.deep.equal([]);
    // the same call (same start) with other usage: a conflict, not billed, listed
    const disagree = await queue.add([at(5000, receiptSubmission("k", "arbitrum", 7, fp(3)))]);
    expect(disagree.outcomes).to.deep.equal([{ id: "k#5000", outcome: "conflict" }]);
    expect(disagree.chunks).to.deep.equal([]);
    expect((await pendingReceipts(queue, "arbitrum")).map((r) => [r.id, r.tokens])).to.deep.equal([
      ["k", 100],
      ["k#5000", 999],
    ]);
    const conflicts = await queue.store.listConflicts();
    expect(conflicts.map((c) => [c.id, c.startTime, c.kept, c.other.fingerprint, c.other.kind, c.other.record["tokens"]])).to.deep.equal([
      ["k#5000", 5000, { fingerprint: fp(2), kind: "receipt" }, fp(3), "receipt", 7],
    ]);
    const stats = await queue.store.stats();
    expect([stats.queued, stats.duplicates, stats.reused, stats.conflicts]).to.deep.equal([2, 2, 1, 1]);
  });

  it("reads dedupe records written before start times were kept: never billed twice, an unbillable one still upgrades", async function () {
    const old = unbillableSubmission("legacy-u", "no_payer");
    await redis.set(queue.store.keys.seen("legacy-q"), `${fp(1)}|q|arbitrum|arbitrum-legacy-chunk`);
    await redis.set(queue.store.keys.seen("legacy-u"), `${fp(1)}|u|no_payer|{"id":"legacy-u",${JSON.stringify(old.body).slice(1)}`);
    expect((await queue.store.getUnbillable("legacy-u"))?.reason).to.equal("no_payer");
    const result = await queue.add([
      { ...receiptSubmission("legacy-q", "arbitrum", 100, fp(1)), startTime: 5000 },
      { ...receiptSubmission("legacy-q", "arbitrum", 100, fp(2)), startTime: 5000 },
      { ...receiptSubmission("legacy-u", "arbitrum", 10, fp(1)), startTime: 7000 },
    ]);
    expect(result.outcomes).to.deep.equal([
      { id: "legacy-q", outcome: "duplicate" },
      { id: "legacy-q", outcome: "conflict" },
      { id: "legacy-u", outcome: "requeued" },
    ]);
    expect((await pendingReceipts(queue, "arbitrum")).map((r) => r.id)).to.deep.equal(["legacy-u"]);
  });

  it("keeps unbillable calls, counts and lists them, and queues one once it becomes billable (only once)", async function () {
    const first = await queue.add([unbillableSubmission("u1", "no_payer"), unbillableSubmission("u2", "failed_call"), unbillableSubmission("u1", "no_payer")]);
    expect(first.outcomes.map((o) => o.outcome)).to.deep.equal(["unbillable", "unbillable", "duplicate"]);
    expect(first.chunks).to.deep.equal([]);
    expect(await queue.store.unbillableCounts()).to.deep.include({ no_payer: 1, failed_call: 1, unknown_route: 0 });
    const listed = await queue.store.listUnbillable("no_payer");
    expect(listed.map((record) => [record.id, record.reason, record.detail, record.key, record.fingerprint])).to.deep.equal([
      ["u1", "no_payer", "because no_payer", "u1", fp(1)],
    ]);

    // Same call, new reason (routes changed): the record moves.
    await queue.add([unbillableSubmission("u1", "unknown_route")]);
    expect(await queue.store.unbillableCounts()).to.deep.include({ no_payer: 0, unknown_route: 1 });

    // Now billable: queued once, the unbillable record is gone.
    const upgrade = await queue.add([receiptSubmission("u1", "arbitrum", 10)]);
    expect(upgrade.outcomes).to.deep.equal([{ id: "u1", outcome: "requeued" }]);
    expect(await queue.store.unbillableCounts()).to.deep.include({ unknown_route: 0, failed_call: 1 });
    expect(await queue.store.getUnbillable("u1")).to.equal(null);
    const again = await queue.add([receiptSubmission("u1", "arbitrum", 10), unbillableSubmission("u1", "no_payer")]);
    expect(again.outcomes.map((o) => o.outcome)).to.deep.equal(["duplicate", "duplicate"]);
    expect((await pendingReceipts(queue, "arbitrum")).map((r) => r.id)).to.deep.equal(["u1"]);
    expect((await queue.store.stats()).unbillable).to.deep.include({ no_payer: 1, failed_call: 1 });
  });

  it("keeps keys and records intact whatever their characters (the script reads entries by byte length)", async function () {
    const keys = ["k,1,2,", "ключ-é-😀", "0000000000000000", "q1,5,0,", "#"];
    const submissions = keys.flatMap((key, index) => [
      receiptSubmission(key, index % 2 === 0 ? "arbitrum" : "polygon", 10 + index, fp(index + 1)),
      unbillableSubmission(`u-${key}`, "no_payer", fp(index + 1)),
    ]);
    const added = await queue.add(submissions);
    expect(added.outcomes).to.deep.equal(keys.flatMap((key) => [{ id: key, outcome: "queued" }, { id: `u-${key}`, outcome: "unbillable" }]));
    const receipts = [...(await pendingReceipts(queue, "arbitrum")), ...(await pendingReceipts(queue, "polygon"))];
    expect(receipts.map((receipt) => [receipt.id, receipt.tokens]).sort()).to.deep.equal(keys.map((key, index) => [key, 10 + index]).sort());
    for (const key of keys) {
      const record = await queue.store.getUnbillable(`u-${key}`);
      expect([record?.id, record?.key, record?.detail], key).to.deep.equal([`u-${key}`, `u-${key}`, "because no_payer"]);
    }
    // A re-send of all of them: duplicates, nothing new.
    const again = await queue.add(submissions);
    expect(again.outcomes.every((outcome) => outcome.outcome === "duplicate")).to.equal(true);
    expect(again.chunks).to.deep.equal([]);
  });

  it("sets the dedupe TTL on every record", async function () {
    const short = new ReceiptQueue({ connection: producer, prefix, chains: ["arbitrum"], dedupeTtlMs: 2 * HOUR });
    await short.add([receiptSubmission("ttl", "arbitrum", 1), unbillableSubmission("ttl-u", "zero_usage")]);
    for (const id of ["ttl", "ttl-u"]) {
      const ttl = await redis.pttl(short.store.keys.seen(id));
      expect(ttl, id).to.be.within(2 * HOUR - 5000, 2 * HOUR);
    }
    await short.close();
  });

  it("recovers a chunk whose job was never added (crash between store and add): once, and not a young one", async function () {
    // The crash: the atomic submit ran, the process died before queue.add.
    const stored = await queue.store.submit([receiptSubmission("r1", "arbitrum", 5), receiptSubmission("r2", "arbitrum", 6)]);
    const chunkId = stored.chunks[0]!.chunkId;
    expect(await queue.queue("arbitrum").getJobState(chunkId)).to.equal("unknown");

    expect(await queue.recover({ graceMs: 60_000 })).to.deep.equal([]); // a request in flight may still add it
    expect(await queue.recover({ graceMs: 0 })).to.deep.equal([{ chain: "arbitrum", chunkId, count: 2 }]);
    expect(await queue.recover({ graceMs: 0 })).to.deep.equal([]);
    const jobs = await queue.queue("arbitrum").getJobs(["waiting"]);
    expect(jobs.map((job) => [job.id, job.data])).to.deep.equal([[chunkId, { v: 1, chain: "arbitrum", chunkId, count: 2 }]]);
    // The LiteLLM re-send after the crash adds nothing.
    const resend = await queue.add([receiptSubmission("r1", "arbitrum", 5), receiptSubmission("r2", "arbitrum", 6)]);
    expect(resend.outcomes.map((o) => o.outcome)).to.deep.equal(["duplicate", "duplicate"]);
    expect(await queue.queue("arbitrum").count()).to.equal(1);
  });

  describe("createReceiptWorker", function () {
    let workerRedis: RedisClient;
    let worker: Worker | undefined;

    beforeEach(function () {
      workerRedis = createWorkerRedis(REDIS_URL);
    });
    afterEach(async function () {
      await worker?.close();
      worker = undefined;
      workerRedis.disconnect();
    });

    it("hands each chunk to the handler, acknowledges it after, retries a failing handler, skips acknowledged chunks", async function () {
      const taken: string[][] = [];
      let failures = 1;
      const done = new Promise<void>((resolve) => {
        worker = createReceiptWorker({
          connection: workerRedis,
          prefix,
          chain: "arbitrum",
          handler: async (receipts, context) => {
            if (failures > 0) {
              failures -= 1;
              throw new Error("batcher not ready");
            }
            taken.push(receipts.map((r) => r.id));
            expect(context.chain).to.equal("arbitrum");
            if (taken.length === 2) resolve();
          },
        });
      });
      const first = await queue.add([receiptSubmission("w1", "arbitrum", 1), receiptSubmission("w2", "arbitrum", 2)]);
      await queue.add([receiptSubmission("w3", "arbitrum", 3), receiptSubmission("w1", "arbitrum", 1)]);
      await done;
      // The failed chunk was retried after its backoff, so the order of chunks is not guaranteed; their content is.
      expect(taken).to.have.deep.members([["w1", "w2"], ["w3"]]);
      await worker!.close();
      expect(await queue.store.pendingCount("arbitrum")).to.equal(0);
      expect((await queue.store.stats()).chains["arbitrum"]).to.deep.equal({ queued: 3, chunks: 2, acked: 2 });
      // A job re-created for a chunk already acknowledged (a sweep racing an ack) is skipped.
      expect(await queue.store.readChunk(first.chunks[0]!.chunkId)).to.equal(null);
      expect(await queue.store.ack("arbitrum", first.chunks[0]!.chunkId)).to.equal(false);
    });
  });

  it("fails fast while Redis is unreachable, recording nothing, and works again when it is back", async function () {
    const proxy = new TcpProxy();
    await proxy.start();
    const client = createProducerRedis(proxy.url, { commandTimeoutMs: 1000 });
    await connectRedis(client, proxy.url);
    const flaky = new ReceiptQueue({ connection: client, prefix, chains: ["arbitrum"], dedupeTtlMs: HOUR });
    try {
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      let error: unknown;
      try {
        await flaky.add([receiptSubmission("down", "arbitrum", 1)]);
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(QueueUnavailableError);
      expect(Date.now() - started).to.be.lessThan(1000);
      let pingError: unknown;
      await flaky.ping(300).catch((caught: unknown) => (pingError = caught));
      expect(pingError).to.be.instanceOf(QueueUnavailableError);
      expect(await redis.exists(flaky.store.keys.seen("down"))).to.equal(0);

      await proxy.restore();
      for (let attempt = 0; attempt < 50 && client.status !== "ready"; attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
      const back = await flaky.add([receiptSubmission("down", "arbitrum", 1)]);
      expect(back.outcomes).to.deep.equal([{ id: "down", outcome: "queued" }]);
    } finally {
      await flaky.close();
      client.disconnect();
      await proxy.cut();
    }
  });

  it("refuses to start against a Redis that cannot be reached, naming the URL without its password", async function () {
    const client = createProducerRedis("redis://user:secret@127.0.0.1:1");
    let error: unknown;
    await connectRedis(client, "redis://user:secret@127.0.0.1:1").catch((caught: unknown) => (error = caught));
    expect(error).to.be.instanceOf(QueueUnavailableError);
    expect((error as Error).message).to.equal("cannot reach Redis at redis://user:***@127.0.0.1:1");
  });
});
