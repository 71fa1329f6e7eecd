/**
 * Two batchers on one chain and one Redis (a fleet, or a paused holder and the standby that took over), against a
 * real Redis: the sealing race of issue #15 replayed, the batcher lease's fencing, and two live Batchers sealing the
 * same pool concurrently. Whatever the interleaving: every receipt ends in exactly one registered batch, none is left
 * out of the order set without a sealing (stranded: never billed), and a batch id has one archive file.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { BatchPool, StaleSealingError } from "../../../relayer/batcher/batch-pool.js";
import { Batcher, type BatchSink } from "../../../relayer/batcher/batcher.js";
import { FencedError, Lease } from "../../../relayer/settler/lease.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { rejection } from "../../helpers/rejection.js";

const PAYER = "0x00000000000000000000000000000000000A11CE";
const HOUR = 3600;
const H0 = 1_764_720_000;

describe("batcher: two batchers on one chain", function () {
  this.timeout(60_000);
  let redis: Redis;
  let prefix: string;

  before(function () {
    redis = testRedis();
  });
  after(function () {
    redis?.disconnect();
  });
  beforeEach(function () {
    prefix = uniquePrefix("fleet");
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
  });

  const at = (offsetS: number) => receipt(PAYER, "openai", "gpt-4-turbo", 100, { startTime: (H0 + offsetS) * 1000 });
  const batch = (batchId: string, receipts: number) => ({ batchId, cid: `cid-${batchId}`, path: `/${batchId}`, receipts, rows: 1, amount: String(receipts) });

  it("refuses a stale sealing: A registers and seals the next batch, B's late register of the first strands nothing", async function () {
    const a = new BatchPool(redis, { prefix, chain: "local" });
    const b = new BatchPool(redis, { prefix, chain: "local" });
    const receipts = [at(1), at(2), at(3), at(4)];
    expect(await a.take(receipts, HOUR, 1000)).to.equal(4);

    const first = (await a.seal(2, HOUR, 2000))!;
    expect(await b.seal(2, HOUR, 2001)).to.deep.equal(first); // B resumes the same sealing (it looks like a crash)
    await a.register(first, batch("0x01", 2));
    const next = (await a.seal(2, HOUR, 3000))!;
    expect(next.ids).to.have.length(2);

    const error = await rejection(b.register(first, batch("0x01", 2)));
    expect(error).to.be.instanceOf(StaleSealingError);

    // nothing changed: A's new sealing is still there, with its receipts, and registers
    expect(await a.seal(2, HOUR, 4000)).to.deep.equal(next);
    expect(await a.receiptsOf(next)).to.have.length(2);
    await a.register(next, batch("0x02", 2));
    expect(await a.seal(2, HOUR, 5000)).to.equal(null);
    expect(await a.pending()).to.deep.equal({ count: 0, oldestAt: null });
    const where = await Promise.all(receipts.map((r) => a.whereIs(r.id)));
    expect(where.filter((w) => w === "0x01")).to.have.length(2);
    expect(where.filter((w) => w === "0x02")).to.have.length(2);
    expect((await a.batch("0x01"))!.handedOff).to.equal(false);
  });

  it("refuses registering a sealing twice (the second batcher would hand the batch over again)", async function () {
    const a = new BatchPool(redis, { prefix, chain: "local" });
    const b = new BatchPool(redis, { prefix, chain: "local" });
    await a.take([at(1), at(2)], HOUR, 1000);
    const sealing = (await a.seal(10, HOUR, 2000))!;
    await a.register(sealing, batch("0x0a", 2));
    await a.markHandedOff("0x0a");
    expect(await rejection(b.register(sealing, batch("0x0a", 2)))).to.be.instanceOf(StaleSealingError);
    expect((await a.batch("0x0a"))!.handedOff).to.equal(true);
    expect(await a.unhanded()).to.deep.equal([]);
  });

  it("fences a paused ex-holder: once another batcher took the lease, its seal and register write nothing", async function () {
    const a = new BatchPool(redis, { prefix, chain: "local" });
    const b = new BatchPool(redis, { prefix, chain: "local" });
    const leaseA = new Lease(redis, a.leaseKeys.key, 5000, { fenceKey: a.leaseKeys.fenceKey });
    const leaseB = new Lease(redis, b.leaseKeys.key, 5000, { fenceKey: b.leaseKeys.fenceKey });
    await a.take([at(1), at(2), at(3)], HOUR, 1000);
    expect(await leaseA.acquire()).to.equal(true);
    expect(await leaseB.acquire()).to.equal(false); // a standby while A holds it
    const stale = { token: leaseA.token };
    const sealing = (await a.seal(2, HOUR, 2000, stale))!;

    // A pauses past its lease (simulated: the lease key lapses), B takes over with a newer token
    await redis.del(a.leaseKeys.key);
    expect(await leaseB.acquire()).to.equal(true);
    expect(leaseB.token).to.be.greaterThan(leaseA.token);

    expect(await rejection(a.register(sealing, batch("0x0b", 2), stale))).to.be.instanceOf(FencedError);
    expect(await rejection(a.seal(2, HOUR, 3000, stale))).to.be.instanceOf(FencedError);
    expect(await a.batch("0x0b")).to.equal(null);
    expect(await a.hasSealing()).to.equal(true);
    // B carries on with the same sealing: nothing lost
    const resumed = (await b.seal(2, HOUR, 4000, { token: leaseB.token }))!;
    expect(resumed).to.deep.equal(sealing);
    await b.register(resumed, batch("0x0b", 2), { token: leaseB.token });
    const rest = (await b.seal(2, HOUR, 5000, { token: leaseB.token }))!;
    expect(rest.ids).to.have.length(1);
    // the lease's renewal keeps the token; a re-acquisition after a lapse takes a new one
    const held = leaseB.token;
    expect(await leaseB.acquire()).to.equal(true);
    expect(leaseB.token).to.equal(held);
    await leaseB.release();
    expect(await leaseA.acquire()).to.equal(true);
    expect(leaseA.token).to.equal(held + 1);
  });

  describe("two live Batchers on one pool", function () {
    let archiveDir: string;
    beforeEach(async function () {
      archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-fleet-archive-"));
    });
    afterEach(async function () {
      await rm(archiveDir, { recursive: true, force: true });
    });

    /** A sink that records what it is handed (the settler's submit is idempotent by batch id; counted here). */
    function recordingSink(): BatchSink & { submitted: string[] } {
      const submitted: string[] = [];
      return {
        submitted,
        submit: async (b) => {
          submitted.push(b.batchId);
        },
      };
    }

    function batcher(sink: BatchSink, options: { lease?: boolean; maxReceipts?: number; gate?: () => Promise<void> } = {}) {
      const pool = new BatchPool(redis, { prefix, chain: "local" });
      const lease = options.lease === false ? undefined : new Lease(redis, pool.leaseKeys.key, 2000, { fenceKey: pool.leaseKeys.fenceKey });
      return {
        pool,
        lease,
        batcher: new Batcher({
          chain: "local",
          pool,
          archive: new LocalArchive(archiveDir),
          sink,
          usageBucket: HOUR,
          context: async () => {
            await options.gate?.();
            return { chain: "local", chainId: 31337, router: "0x00000000000000000000000000000000000000aa", registry: { providerId: () => 1, modelId: () => 1 } };
          },
          maxReceipts: options.maxReceipts ?? 7,
          maxWaitMs: 0,
          ...(lease === undefined ? {} : { lease }),
        }),
      };
    }

    async function checkExactlyOnce(pool: BatchPool, receipts: readonly Receipt[]): Promise<Map<string, number>> {
      expect(await pool.pending()).to.deep.equal({ count: 0, oldestAt: null });
      expect(await pool.hasSealing()).to.equal(false);
      const perBatch = new Map<string, number>();
      for (const r of receipts) {
        const where = await pool.whereIs(r.id);
        expect(where, `receipt ${r.id}`).to.match(/^0x[0-9a-f]{64}$/);
        perBatch.set(where!, (perBatch.get(where!) ?? 0) + 1);
      }
      const archive = new LocalArchive(archiveDir);
      for (const [batchId, count] of perBatch) {
        const registered = (await pool.batch(batchId))!;
        expect(registered.receipts).to.equal(count);
        const file = (await archive.read("local", batchId))!;
        const expected = [];
        for (const r of receipts) if ((await pool.whereIs(r.id)) === batchId) expected.push(r.id);
        expect(file.receipts.map((r) => r.receipt.id).sort()).to.deep.equal(expected.sort());
        expect(JSON.parse(await readFile(registered.path, "utf8")).batchId).to.equal(batchId);
      }
      return perBatch;
    }

    it("without a lease (the race itself): ticks interleaved at random never strand or double-batch a receipt", async function () {
      const sink = recordingSink();
      const one = batcher(sink, { lease: false, maxReceipts: 3 });
      const two = batcher(sink, { lease: false, maxReceipts: 3 });
      const receipts = Array.from({ length: 60 }, (_, i) => at(i));
      for (let i = 0; i < receipts.length; i += 6) {
        await one.batcher.take(receipts.slice(i, i + 6));
        await Promise.all([one.batcher.tick(Date.now() + 1), two.batcher.tick(Date.now() + 1), one.batcher.tick(Date.now() + 1)]);
      }
      await one.batcher.tick(Date.now() + 1);
      const perBatch = await checkExactlyOnce(one.pool, receipts);
      expect(perBatch.size).to.equal(20);
      expect(new Set(sink.submitted)).to.deep.equal(new Set(perBatch.keys()));
    });

    it("with the lease: one seals, the standby does nothing, and takes over with nothing lost when the holder stops", async function () {
      const sink = recordingSink();
      const one = batcher(sink);
      const two = batcher(sink);
      const receipts = Array.from({ length: 28 }, (_, i) => at(i));
      await two.batcher.take(receipts.slice(0, 14)); // any process may take receipts into the pool
      expect(await one.batcher.tick(Date.now() + 1)).to.equal(true);
      expect(await two.batcher.tick(Date.now() + 1)).to.equal(false); // standby
      expect(sink.submitted).to.have.length(2);

      // the holder dies (no more renewals, no release): the standby takes over once the lease lapses
      await one.batcher.take(receipts.slice(14));
      const diedAt = Date.now();
      let took = false;
      while (!took) {
        took = await two.batcher.tick(Date.now() + 1);
        if (!took) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Date.now() - diedAt).to.be.at.most(two.lease!.takeoverMs + 500);
      // the ex-holder wakes up: fenced out (its tick sees the lease held by two and stands by)
      expect(await one.batcher.tick(Date.now() + 1)).to.equal(false);
      await checkExactlyOnce(one.pool, receipts);
      expect(sink.submitted).to.have.length(4);
      expect(new Set(sink.submitted).size).to.equal(4);
    });

    it("fences a holder paused mid-batch: the new holder registers the sealing, the old one's late writes are refused", async function () {
      const sink = recordingSink();
      let release!: () => void;
      const paused = new Promise<void>((resolve) => (release = resolve));
      let reached!: () => void;
      const atGate = new Promise<void>((resolve) => (reached = resolve));
      const one = batcher(sink, { gate: () => (reached(), paused) });
      const two = batcher(sink);
      const receipts = Array.from({ length: 5 }, (_, i) => at(i));
      await one.batcher.take(receipts);
      const oneTick = one.batcher.tick(Date.now() + 1);
      await atGate; // one holds the lease, sealed, and is paused building the batch
      expect(await one.pool.hasSealing()).to.equal(true);
      await redis.del(one.pool.leaseKeys.key); // its lease lapses while it is paused
      expect(await two.batcher.tick(Date.now() + 1)).to.equal(true); // two takes over, finishes the same sealing
      expect(sink.submitted).to.have.length(1);
      const registered = sink.submitted[0]!;
      const bytes = await readFile(new LocalArchive(archiveDir).locationOf("local", registered), "utf8");
      release();
      expect(await oneTick).to.equal(true); // dropped its work (FencedError handled), not thrown
      expect(sink.submitted).to.deep.equal([registered]); // not handed over twice
      expect(await readFile(new LocalArchive(archiveDir).locationOf("local", registered), "utf8")).to.equal(bytes); // file not rewritten
      await checkExactlyOnce(one.pool, receipts);
    });
  });
});
