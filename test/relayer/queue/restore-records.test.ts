/**
 * ReceiptStore.restoreQueued / holdReusedKeys against a real Redis: rebuilt records make re-sends duplicates, a live
 * record is never replaced, an expired one is not written, and a reused id's bare key is held only after every
 * call's own record is in place (else it would hide the record of the call that owns that key).
 */
import { expect } from "chai";
import type { Redis } from "ioredis";

import { fingerprintOfReceipt } from "../../../relayer/ingest/fingerprint.js";
import { ReceiptStore, type QueuedRecord, type Receipt, type Submission } from "../../../relayer/queue/index.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

const PAYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const DAY = 86_400_000;

function recordOf(r: Receipt, key: string, expiresAt = Date.now() + DAY): QueuedRecord {
  return { id: r.id, key, fingerprint: fingerprintOfReceipt(r), startTime: r.startTime, chain: r.chain, origin: "restored:0xtest", expiresAt };
}

function resend(r: Receipt, key: string): Submission {
  const { id: _id, ...body } = r;
  return { kind: "receipt", key, fingerprint: fingerprintOfReceipt(r), startTime: r.startTime, body };
}

describe("ReceiptStore: dedupe records rebuilt by a restore", function () {
  let redis: Redis;
  let prefix: string;
  let store: ReceiptStore;

  beforeEach(function () {
    redis = testRedis();
    prefix = uniquePrefix("restore");
    store = new ReceiptStore(redis, { prefix, dedupeTtlMs: 30 * DAY });
  });

  afterEach(async function () {
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });

  it("makes re-sends duplicates, even of a reused id whose owner is in a later batch file", async function () {
    const key = `chatcmpl-${prefix}`;
    const owner = receipt(PAYER, "openai", "gpt-4-turbo", 100, { id: key, startTime: 1_700_000_000_000 });
    const reuser = receipt(PAYER, "openai", "gpt-4-turbo", 200, { id: `${key}#1700000050000`, startTime: 1_700_000_050_000 });
    // the reuser's batch file is read first, the owner's later: both own ids first, then the bare keys
    expect(await store.restoreQueued([recordOf(reuser, key)])).to.deep.equal({ written: 1, present: 0, expired: 0 });
    expect(await store.restoreQueued([recordOf(owner, key)])).to.deep.equal({ written: 1, present: 0, expired: 0 });
    expect(await store.holdReusedKeys([recordOf(reuser, key)])).to.equal(0);
    expect((await store.dedupeRecords([key]))[0]).to.deep.equal({ fingerprint: fingerprintOfReceipt(owner), startTime: owner.startTime, kind: "q" });

    const result = await store.submit([resend(owner, key), resend(reuser, key)]);
    expect(result.outcomes).to.deep.equal([
      { id: key, outcome: "duplicate" },
      { id: reuser.id, outcome: "duplicate" },
    ]);
    expect(result.chunks).to.deep.equal([]);
  });

  it("holds the bare key of a reused id whose owner was never billed, and never replaces or resurrects a record", async function () {
    const key = `chatcmpl-${prefix}`;
    const reuser = receipt(PAYER, "openai", "gpt-4-turbo", 200, { id: `${key}#1700000050000`, startTime: 1_700_000_050_000 });
    await store.restoreQueued([recordOf(reuser, key)]);
    expect(await store.holdReusedKeys([recordOf(reuser, key)])).to.equal(1);
    expect((await store.submit([resend(reuser, key)])).outcomes).to.deep.equal([{ id: key, outcome: "duplicate" }]);

    const other = receipt(PAYER, "openai", "gpt-4-turbo", 300);
    const expired = recordOf(other, other.id, Date.now() - 1);
    expect(await store.restoreQueued([expired])).to.deep.equal({ written: 0, present: 0, expired: 1 });
    const live = { ...recordOf(other, other.id), fingerprint: "0123456789abcdef" };
    await store.restoreQueued([live]);
    expect(await store.restoreQueued([recordOf(other, other.id)])).to.deep.equal({ written: 0, present: 1, expired: 0 });
    expect((await store.dedupeRecords([other.id]))[0]!.fingerprint).to.equal("0123456789abcdef");
    const ttl = await redis.pttl(store.keys.seen(other.id));
    expect(ttl).to.be.within(DAY - 60_000, DAY);
  });
});
