/**
 * The batcher's pool against a real Redis: batches are cut at usage-bucket boundaries of the calls' start time, in
 * one Lua step, with the pool's exactly-once guarantees kept (a sealing survives a crash unchanged; a receipt is in
 * one place only).
 */
import { expect } from "chai";
import type { Redis } from "ioredis";

import { BatchPool } from "../../../relayer/batcher/batch-pool.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

const PAYER = "0x00000000000000000000000000000000000A11CE";
const HOUR = 3600;
const H0 = 1_764_720_000; // a bucket start (a multiple of 3600)

describe("batcher pool: usage buckets", function () {
  let redis: Redis;
  let prefix: string;
  let pool: BatchPool;

  before(function () {
    redis = testRedis();
  });
  after(function () {
    redis?.disconnect();
  });
  beforeEach(function () {
    prefix = uniquePrefix("pool");
    pool = new BatchPool(redis, { prefix, chain: "local" });
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
  });

  const at = (bucketStart: number, offsetS: number) => receipt(PAYER, "openai", "gpt-4-turbo", 100, { startTime: (bucketStart + offsetS) * 1000 });

  it("computes a call's bucket from its start time in ms, boundaries included", function () {
    expect(callsFromOf(H0 * 1000, HOUR)).to.equal(H0);
    expect(callsFromOf((H0 + HOUR) * 1000 - 1, HOUR)).to.equal(H0);
    expect(callsFromOf((H0 + HOUR) * 1000, HOUR)).to.equal(H0 + HOUR);
    expect(callsFromOf(H0 * 1000 + 1799_999.7, 1800)).to.equal(H0);
    expect(() => callsFromOf(-1, HOUR)).to.throw(RangeError);
    expect(() => callsFromOf(H0 * 1000, 0)).to.throw(RangeError);
  });

  it("seals the bucket of the receipt that waited longest, up to max, and never mixes buckets", async function () {
    const late = [at(H0, 10), at(H0, 20), at(H0, HOUR - 1)]; // an old bucket, pooled after the newer one
    const fresh = [at(H0 + HOUR, 0), at(H0 + HOUR, 5)];
    expect(await pool.take(fresh, HOUR, 1000)).to.equal(2);
    expect(await pool.take(late, HOUR, 2000)).to.equal(3);
    expect(await pool.take([...late, ...fresh], HOUR, 3000)).to.equal(0); // re-delivered: taken once

    const first = (await pool.seal(10, HOUR, 5000))!;
    expect(first.callsFrom).to.equal(H0 + HOUR);
    expect([...first.ids].sort()).to.deep.equal(fresh.map((r) => r.id).sort());
    // a crash before registering: the same sealing comes back, whatever max and time are asked now
    expect(await pool.seal(1, HOUR, 9000)).to.deep.equal(first);
    await pool.register(first, { batchId: "0x01", cid: "c1", path: "/1", receipts: 2, rows: 1, amount: "2" });
    expect((await pool.batch("0x01"))!.callsFrom).to.equal(H0 + HOUR);

    const second = (await pool.seal(2, HOUR, 6000))!;
    expect(second.callsFrom).to.equal(H0);
    expect(second.ids).to.have.length(2);
    await pool.register(second, { batchId: "0x02", cid: "c2", path: "/2", receipts: 2, rows: 1, amount: "2" });
    const third = (await pool.seal(2, HOUR, 7000))!;
    expect(third.callsFrom).to.equal(H0);
    expect([...second.ids, ...third.ids].sort()).to.deep.equal(late.map((r) => r.id).sort());
    await pool.register(third, { batchId: "0x03", cid: "c3", path: "/3", receipts: 1, rows: 1, amount: "1" });
    expect(await pool.seal(2, HOUR, 8000)).to.equal(null);
    expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
    expect(await redis.zcard(`${pool.tag}:buckets`)).to.equal(0);
    for (const r of late) expect(await pool.whereIs(r.id)).to.be.oneOf(["0x02", "0x03"]);
  });

  it("takes a bucket's receipts longest waiting first, whatever their ids", async function () {
    const first = { ...at(H0, 1), id: "zzz-entered-first" };
    const second = { ...at(H0, 2), id: "aaa-entered-second" };
    const other = { ...at(H0 + HOUR, 3), id: "mmm-other-bucket" };
    await pool.take([first], HOUR, 1000);
    await pool.take([other], HOUR, 1500);
    await pool.take([second], HOUR, 2000);
    const sealing = (await pool.seal(1, HOUR, 3000))!;
    expect(sealing).to.deep.include({ callsFrom: H0, ids: [first.id] });
    await pool.register(sealing, { batchId: "0x0f", cid: "c", path: "/f", receipts: 1, rows: 1, amount: "1" });
    // now the other bucket's receipt has waited longest
    expect(await pool.seal(5, HOUR, 4000)).to.deep.include({ callsFrom: H0 + HOUR, ids: [other.id] });
  });

  it("refuses a chunk with a receipt whose start time cannot be placed, before writing any of it", async function () {
    const good = at(H0, 1);
    const bad = { ...at(H0, 2), startTime: -5 };
    let failed = false;
    try {
      await pool.take([good, bad], HOUR);
    } catch (error) {
      failed = error instanceof RangeError;
    }
    expect(failed).to.equal(true);
    expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
    expect(await pool.whereIs(good.id)).to.equal(null);
  });

  it("places receipts pooled by a batcher without buckets by their start time when it first seals", async function () {
    // what an older batcher left: pool and order entries, no bucket
    const old = [at(H0, 100), at(H0 + 2 * HOUR, 7), at(H0, 3000)];
    for (const [i, r] of old.entries()) {
      await redis.hset(`${pool.tag}:pool`, r.id, JSON.stringify(r));
      await redis.zadd(`${pool.tag}:order`, 100 + i, r.id);
      await redis.set(`${pool.tag}:known:${r.id}`, "pool");
    }
    const first = (await pool.seal(10, HOUR, 500))!;
    expect(first.callsFrom).to.equal(H0);
    expect([...first.ids].sort()).to.deep.equal([old[0]!.id, old[2]!.id].sort());
    await pool.register(first, { batchId: "0x0a", cid: "c", path: "/a", receipts: 2, rows: 1, amount: "1" });
    const second = (await pool.seal(10, HOUR, 600))!;
    expect(second).to.deep.include({ callsFrom: H0 + 2 * HOUR, ids: [old[1]!.id] });
  });
});
