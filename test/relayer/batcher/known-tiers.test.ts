/**
 * The two tiers of the batcher's receipt ids (relayer/batcher/batch-pool.ts), against a real Redis and a real Redis
 * Cluster: a receipt re-delivered after its batch's ids moved to the spread long tier and its record in the chain's
 * slot expired is not batched again (its payer would be charged twice); a TAKE whose long-tier lookup is older than
 * G/2 is refused; a crash between register and the move is finished at the next tick; records of the previous
 * version still block a re-take; on a cluster the long tier spreads over many slots.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { BILLED_SHARDS, BatchPool, LateTakeError } from "../../../relayer/batcher/batch-pool.js";
import { Batcher, type BatchSink } from "../../../relayer/batcher/batcher.js";
import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { asRedis, createWorkerRedis, type RedisClient } from "../../../relayer/queue/index.js";
import { Lease } from "../../../relayer/settler/lease.js";
import { receipt } from "../../helpers/receipts.js";
import { type RedisClusterHandle, slotSpread, startRedisCluster } from "../../helpers/redis-cluster.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { rejection } from "../../helpers/rejection.js";

const PAYER = "0x00000000000000000000000000000000000A11CE";
const HOUR = 3600;
const H0 = 1_764_720_000;
const DAY = 86_400_000;

const at = (offsetS: number) => receipt(PAYER, "openai", "gpt-4-turbo", 100, { startTime: (H0 + offsetS) * 1000 });
const batch = (batchId: string, receipts: number) => ({ batchId, cid: `cid-${batchId}`, path: `/${batchId}`, receipts, rows: 1, amount: String(receipts) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("batcher pool: short and long tier of receipt ids", function () {
  this.timeout(30_000);
  let redis: Redis;
  let prefix: string;

  before(function () {
    redis = testRedis();
  });
  after(function () {
    redis?.disconnect();
  });
  beforeEach(function () {
    prefix = uniquePrefix("known");
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
  });

  it("does not batch again a receipt re-delivered after its ids moved to the long tier and its short record expired", async function () {
    const pool = new BatchPool(redis, { prefix, chain: "local", graceMs: 200 });
    const receipts = [at(1), at(2), at(3)];
    expect(await pool.take(receipts, HOUR)).to.equal(3);
    const sealing = (await pool.seal(10, HOUR))!;
    await pool.register(sealing, batch("0x01", 3));
    expect(await pool.unarchived()).to.deep.equal(["0x01"]);
    expect(await redis.lrange(`${pool.tag}:ids:0x01`, 0, -1)).to.deep.equal(sealing.ids);
    for (const r of receipts) expect(await redis.pttl(`${pool.tag}:known:${r.id}`)).to.be.above(39 * DAY);

    expect(await pool.archiveKnown("0x01")).to.equal(3);
    expect(await pool.unarchived()).to.deep.equal([]);
    expect(await redis.exists(`${pool.tag}:ids:0x01`)).to.equal(0);
    for (const r of receipts) {
      expect(await redis.pttl(`${pool.tag}:known:${r.id}`)).to.be.within(1, 200);
      expect(await redis.get(pool.billedKey(r.id))).to.equal("0x01");
      expect(await redis.pttl(pool.billedKey(r.id))).to.be.above(39 * DAY);
    }
    expect(await pool.archiveKnown("0x01")).to.equal(0); // again (two batchers, a retry): a no-op

    await sleep(300);
    for (const r of receipts) expect(await redis.exists(`${pool.tag}:known:${r.id}`)).to.equal(0);
    for (const r of receipts) expect(await pool.whereIs(r.id)).to.equal("0x01");
    const fresh = at(4);
    expect(await pool.take([...receipts, fresh], HOUR)).to.equal(1);
    expect(await pool.seal(10, HOUR)).to.deep.include({ ids: [fresh.id] });
  });

  it("refuses a TAKE more than G/2 after its long-tier lookup: the lookup may have missed a move whose short record is gone", async function () {
    const pool = new BatchPool(redis, { prefix, chain: "local", graceMs: 300 });
    const r = at(1);
    await pool.take([r], HOUR);
    await pool.register((await pool.seal(10, HOUR))!, batch("0x02", 1));

    // step 0 of a re-delivery, then a pause: meanwhile the batch's ids move and their short records expire
    const step0 = await pool.redisTime();
    expect(await pool.billed([r.id])).to.deep.equal([null]);
    await pool.archiveKnown("0x02");
    await sleep(400);
    expect(await redis.exists(`${pool.tag}:known:${r.id}`)).to.equal(0);
    const late = await rejection(pool.takeUnbilled([r], HOUR, step0));
    expect(late).to.be.instanceOf(LateTakeError);
    expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
    expect(await pool.whereIs(r.id)).to.equal("0x02");
    // take() starts again from step 0, finds it billed
    expect(await pool.take([r], HOUR)).to.equal(0);

    // within G/2 of step 0 a TAKE runs (and an id never seen is taken)
    const other = at(2);
    expect(await pool.takeUnbilled([other], HOUR, (await pool.redisTime()) - 100)).to.equal(1);
  });

  it("finishes at the next tick the move of a batch a crash left unarchived after register", async function () {
    const archiveDir = await mkdtemp(join(tmpdir(), "known-archive-"));
    try {
      const pool = new BatchPool(redis, { prefix, chain: "local", graceMs: 60_000 });
      const submitted: string[] = [];
      const sink: BatchSink = { submit: async (b) => void submitted.push(b.batchId) };
      const batcher = new Batcher({
        chain: "local",
        pool,
        archive: new LocalArchive(archiveDir),
        sink,
        usageBucket: HOUR,
        context: async () => ({ chain: "local", chainId: 31337, router: "0x00000000000000000000000000000000000000aa", registry: { providerId: () => 1, modelId: () => 1 } }),
        maxReceipts: 10,
        maxWaitMs: 0,
      });
      // the crash: registered and handed over, the process died before the ids were copied
      const crashed = [at(1), at(2)];
      await pool.take(crashed, HOUR);
      await pool.register((await pool.seal(10, HOUR))!, batch("0x0c", 2));
      await pool.markHandedOff("0x0c");
      expect(await pool.unarchived()).to.deep.equal(["0x0c"]);
      for (const r of crashed) expect(await redis.exists(pool.billedKey(r.id))).to.equal(0);

      // the next tick of the holder finishes it, and a batch sealed now is moved at once
      const later = [at(3), at(4), at(5)];
      await pool.take(later, HOUR);
      expect(await batcher.tick()).to.equal(true);
      expect(await pool.unarchived()).to.deep.equal([]);
      expect(submitted).to.have.length(1);
      const sealed = submitted[0]!;
      for (const r of crashed) expect(await redis.get(pool.billedKey(r.id))).to.equal("0x0c");
      for (const r of later) expect(await redis.get(pool.billedKey(r.id))).to.equal(sealed);
      for (const r of [...crashed, ...later]) expect(await redis.pttl(`${pool.tag}:known:${r.id}`)).to.be.within(1, 60_000);
      expect(await redis.keys(`${pool.tag}:ids:*`)).to.deep.equal([]);
    } finally {
      await rm(archiveDir, { recursive: true, force: true });
    }
  });

  it("keeps honouring the known records of the previous version (40 days in the chain's slot, no long tier)", async function () {
    const pool = new BatchPool(redis, { prefix, chain: "local", graceMs: 200 });
    const old = at(1);
    await redis.set(`${pool.tag}:known:${old.id}`, "0xold", "PX", 40 * DAY);
    expect(await pool.take([old], HOUR)).to.equal(0);
    expect(await pool.whereIs(old.id)).to.equal("0xold");
    expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
  });

  it("refuses a grace not above the batcher lease's takeover time", function () {
    const pool = new BatchPool(redis, { prefix, chain: "local", graceMs: 20_000 });
    const lease = new Lease(redis, pool.leaseKeys.key, 15_000, { fenceKey: pool.leaseKeys.fenceKey });
    const make = () =>
      new Batcher({ chain: "local", pool, archive: new LocalArchive(tmpdir()), sink: { submit: async () => undefined }, usageBucket: HOUR, context: async () => { throw new Error("unused"); }, lease });
    expect(make).to.throw(RangeError, /grace/);
    expect(() => new BatchPool(redis, { prefix, chain: "local", graceMs: 0 })).to.throw(RangeError);
  });
});

describe("batcher pool: the long tier on a real Redis Cluster", function () {
  this.timeout(120_000);
  let cluster: RedisClusterHandle;
  let client: RedisClient;

  before(async function () {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    client = createWorkerRedis(cluster.url);
  });
  after(async function () {
    client?.disconnect();
    await cluster?.stop();
  });

  it("spreads the long-tier records of 10,000 ids over many slots, each script in one slot, and re-deliveries stay out", async function () {
    const prefix = uniquePrefix("knowncl");
    const pool = new BatchPool(asRedis(client), { prefix, chain: "local", graceMs: 500 });
    const receipts = Array.from({ length: 10_000 }, (_, i) => at(i % 3000));
    for (let i = 0; i < receipts.length; i += 2000) expect(await pool.take(receipts.slice(i, i + 2000), HOUR)).to.equal(2000);
    for (let n = 0; ; n++) {
      const sealing = await pool.seal(2000, HOUR);
      if (sealing === null) break;
      const batchId = `0x${n.toString(16).padStart(2, "0")}`;
      await pool.register(sealing, batch(batchId, sealing.ids.length));
      await pool.archiveKnown(batchId);
    }
    expect(await pool.unarchived()).to.deep.equal([]);

    const spread = await slotSpread(cluster.seeds, `{${prefix}:batcher:local:*}:billed:*`);
    expect(spread.keys).to.equal(10_000);
    expect(spread.slots).to.be.above(BILLED_SHARDS * 0.9);
    expect(spread.maxShare).to.be.below(0.01);

    await sleep(700); // the short records are gone: only the long tier remembers
    expect(await client.exists(`${pool.tag}:known:${receipts[0]!.id}`)).to.equal(0);
    for (let i = 0; i < receipts.length; i += 2000) expect(await pool.take(receipts.slice(i, i + 2000), HOUR)).to.equal(0);
    expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
    expect(await pool.whereIs(receipts[9999]!.id)).to.match(/^0x0[0-4]$/);
  });
});
