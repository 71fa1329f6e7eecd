/**
 * Leases with fencing against a real Redis: the token each acquisition takes, a standby taking over within
 * `takeoverMs` once the holder stops renewing, and the stages' writes refused for a paused ex-holder: the settler's
 * ledger, the reconciler's dispute ledger, and the auto-disputer, which sends nothing once it lost the lease.
 */
import { expect } from "chai";
import { Wallet } from "ethers";
import type { Redis } from "ioredis";

import type { DisputeClient } from "../../../relayer/disputes/dispute-client.js";
import { AutoDisputer } from "../../../relayer/reconciler/auto-dispute.js";
import { RedisDisputeLedger } from "../../../relayer/reconciler/dispute-ledger.js";
import type { IntervalCheck } from "../../../relayer/reconciler/report.js";
import { FencedError, Lease } from "../../../relayer/settler/lease.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { rejection } from "../../helpers/rejection.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("leases with fencing", function () {
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
    prefix = uniquePrefix("lease");
  });
  afterEach(async function () {
    await dropPrefix(redis, prefix);
  });

  it("one holder at a time; a standby takes over within takeoverMs of the holder's last renewal, with a newer token", async function () {
    const key = `{${prefix}:settler:local}:lease`;
    const holder = new Lease(redis, key, 600);
    const standby = new Lease(redis, key, 600);
    expect(holder.takeoverMs).to.equal(800);
    holder.start();
    await sleep(50);
    expect(holder.held).to.equal(true);
    standby.start();
    await sleep(900); // several renewals: the holder keeps it, the standby waits
    expect(holder.held).to.equal(true);
    expect(standby.held).to.equal(false);
    const first = holder.token;

    await holder.stop(); // the holder "dies": no renewal, no release
    const diedAt = Date.now();
    while (!standby.held) await sleep(10);
    expect(Date.now() - diedAt).to.be.at.most(standby.takeoverMs + 100);
    expect(standby.token).to.be.greaterThan(first);
    expect(await holder.acquire()).to.equal(false); // the ex-holder finds it taken
    await standby.release();
    expect(await holder.acquire()).to.equal(true);
    expect(holder.token).to.be.greaterThan(first + 1); // a new holding, a new token
    await holder.release();
  });

  it("the settler's ledger: a paused ex-holder's writes are refused, the new holder's go through", async function () {
    const old = new SettlementStore(redis, prefix, "local");
    const current = new SettlementStore(redis, prefix, "local");
    const oldLease = new Lease(redis, old.key("lease"), 5000);
    const newLease = new Lease(redis, current.key("lease"), 5000);
    old.fence = { fenceKey: oldLease.fenceKey, token: () => oldLease.token };
    current.fence = { fenceKey: newLease.fenceKey, token: () => newLease.token };
    const batch = { batchId: `0x${"ab".repeat(32)}`, path: "/a", cid: "c", receiptsRoot: `0x${"cd".repeat(32)}`, callsFrom: 0, rows: 1, receipts: 1, amount: "1" };
    await old.submit(batch, 1); // submit is the batcher's, unfenced
    expect(await oldLease.acquire()).to.equal(true);
    await old.update(batch.batchId, { note: "old holder" });

    await redis.del(old.key("lease")); // the old holder is paused past its lease; another takes it
    expect(await newLease.acquire()).to.equal(true);
    await current.update(batch.batchId, { note: "new holder" });
    const tx = { hash: "0x01", raw: "0x02", maxFeePerGas: "1", maxPriorityFeePerGas: "1", sentAt: 1 };
    expect(await rejection(old.assignNonce("0x00000000000000000000000000000000000000aa", batch.batchId, 7, 21000n, tx))).to.be.instanceOf(FencedError);
    expect(await rejection(old.update(batch.batchId, { state: "sent" }))).to.be.instanceOf(FencedError);
    expect(await rejection(old.finalize({ ...(await old.get(batch.batchId))!, state: "final" }, { batches_final: 1 }))).to.be.instanceOf(FencedError);
    const record = (await current.get(batch.batchId))!;
    expect(record).to.deep.include({ state: "queued", note: "new holder", nonce: null });
    expect(await current.nextNonce("0x00000000000000000000000000000000000000aa")).to.equal(0);
    expect(await current.stats()).to.deep.equal({});
    await current.finalize({ ...record, state: "final" }, { batches_final: 1 });
    expect(await current.finalIds()).to.deep.equal([batch.batchId]);
  });

  it("the settler's ledger: a fenced write keeps a DEL of one key (a side transaction is cleared, not left to be watched again)", async function () {
    // found by the demo: the filter that drops field-less HSETs also dropped ["DEL", side], so a mined release stayed
    // the side record in flight, was reported mined on every pass and the next release never went out
    const store = new SettlementStore(redis, prefix, "local");
    const lease = new Lease(redis, store.key("lease"), 5000);
    expect(await lease.acquire()).to.equal(true);
    store.fence = { fenceKey: lease.fenceKey, token: () => lease.token };
    const tx = { hash: "0x01", raw: "0x02", maxFeePerGas: "1", maxPriorityFeePerGas: "1", sentAt: 1 };
    const record = { id: `0x${"ef".repeat(32)}`, kind: "release", data: "0x", state: "signed" as const, nonce: 3, gasLimit: "50000", txs: [tx] };
    await store.assignSideNonce("0x00000000000000000000000000000000000000aa", record);
    expect(await store.side()).to.deep.include({ id: record.id, nonce: 3 });
    await store.clearSide();
    expect(await store.side()).to.equal(null);
    // and without a fence (a store nobody leases yet)
    const unfenced = new SettlementStore(redis, prefix, "other");
    await unfenced.assignSideNonce("0x00000000000000000000000000000000000000aa", record);
    await unfenced.clearSide();
    expect(await unfenced.side()).to.equal(null);
  });

  it("the reconciler: a paused ex-holder writes nothing to the dispute ledger and its auto-disputer sends nothing", async function () {
    const oldLedger = new RedisDisputeLedger(redis, prefix, "local");
    const newLedger = new RedisDisputeLedger(redis, prefix, "local");
    const oldLease = new Lease(redis, oldLedger.leaseKey, 5000);
    const newLease = new Lease(redis, newLedger.leaseKey, 5000);
    oldLedger.fence = { fenceKey: oldLease.fenceKey, token: () => oldLease.token };
    newLedger.fence = { fenceKey: newLease.fenceKey, token: () => newLease.token };
    expect(await oldLease.acquire()).to.equal(true);
    await oldLedger.setNumber("cursor", 100);

    await redis.del(oldLedger.leaseKey);
    expect(await newLease.acquire()).to.equal(true);
    await newLedger.setNumber("cursor", 200);
    expect(await rejection(oldLedger.setNumber("cursor", 150))).to.be.instanceOf(FencedError);
    expect(await rejection(oldLedger.add({ disputeId: "0x01", payer: "0x00000000000000000000000000000000000000aa", mine: true, listedAt: 1 }))).to.be.instanceOf(FencedError);
    expect(await newLedger.getNumber("cursor")).to.equal(200);
    expect(await newLedger.list()).to.deep.equal([]);

    // its auto-disputer asks before every transaction: with the lease lost it refuses before touching the chain
    const payer = Wallet.createRandom();
    let touched = false;
    const client = new Proxy({}, { get: () => ((touched = true), () => Promise.reject(new Error("chain touched"))) }) as unknown as DisputeClient;
    const disputer = new AutoDisputer({
      client,
      payers: new Map([[payer.address, { address: payer.address, signer: payer, source: "test" }]]),
      approveBond: false,
      ledger: oldLedger,
      active: () => false,
    });
    const overcharged = { status: "overcharged", openDispute: null, heldAmount: 1n, payer: payer.address } as unknown as IntervalCheck;
    expect(disputer.candidates([overcharged])).to.have.length(1);
    expect(await rejection(disputer.act([overcharged]))).to.be.instanceOf(FencedError);
    expect(touched).to.equal(false);
  });
});
