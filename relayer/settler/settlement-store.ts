/**
 * The settler's durable ledger in Redis: one record per batch and the nonce sequence of the signer. Every key of a
 * chain shares the hash tag `{<prefix>:settler:<chain>}`. A record is written before each side effect (a signed
 * transaction is stored before it is broadcast), so a restarted settler resumes exactly where the last one stopped.
 *
 *   <tag>:batch:<batchId>   hash, see SettlementRecord
 *   <tag>:active            zset batch id -> submission sequence (every batch not yet final)
 *   <tag>:final             zset batch id -> final time (ms)
 *   <tag>:refused           zset batch id -> refusal time (ms): batches the router refused for good (their
 *                           receipts root was settled by another batch id); the record's note says by which
 *   <tag>:seq               submission counter
 *   <tag>:nonce:<signer>    next nonce to assign
 *   <tag>:stats             hash of counters
 *   <tag>:lease             the settler lease (see lease.ts); <tag>:lease:fence its fencing counter
 *
 * Fencing: the settler holding the lease sets `fence`; from then on every write of the ledger but submit() (which
 * the batcher calls, from any process) is one Lua step that checks the lease's token first, so a settler paused past
 * its lease cannot write over the ledger of the settler that took over (FencedError, nothing written).
 *   <tag>:signers           hash: the keys the settler holding the lease signs with (active, retiring, at); for
 *                           `agentgpt keys rotate`, which revokes a retiring key only once the live settler has moved on
 *   <tag>:side              hash: the one side transaction in flight (a release, see side-calls.ts), see SideRecord;
 *                           its nonce comes from the same <tag>:nonce:<signer> sequence as the batches'
 */
import type { Redis } from "ioredis";

import type { Fees } from "./fees.js";
import { writeOps, type FencedOp, type WriteFence } from "./lease.js";
import type { SettlementOutcome } from "./outcome.js";

export type SettlementState = "queued" | "signed" | "sent" | "mined" | "final" | "blocked" | "refused";

export interface SentTransaction {
  hash: string;
  raw: string;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
  sentAt: number;
}

export interface SettlementRecord {
  batchId: string;
  state: SettlementState;
  /** archive file of the batch */
  path: string;
  cid: string;
  receiptsRoot: string;
  /** start (unix s) of the usage bucket of the batch's calls (the batch file's, which is what is sent) */
  callsFrom: number;
  rows: number;
  receipts: number;
  amount: string;
  submittedAt: number;
  /** head block when the settler first saw the batch (lower bound to search for its settlement) */
  submittedBlock: number;
  nonce: number | null;
  gasLimit: string | null;
  txs: SentTransaction[];
  /** set once mined */
  txHash: string | null;
  block: number | null;
  blockHash: string | null;
  gasUsed: string | null;
  outcome: SettlementOutcome | null;
  /** why it is blocked or was last sent back to the queue */
  note: string | null;
  finalAt: number | null;
}

/** A transaction the settler sends for another stage (a release): one at a time, from the batches' nonce sequence. */
export interface SideRecord {
  /** the caller's id (a release: the batch id) */
  id: string;
  /** what it is, for logs ("release") */
  kind: string;
  data: string;
  state: "signed" | "sent";
  nonce: number;
  gasLimit: string;
  txs: SentTransaction[];
}

/** The keys a running settler signs with. */
export interface SettlerSigners {
  /** signs every new batch */
  readonly active: string;
  /** only finish the transactions they signed */
  readonly retiring: readonly string[];
  /** ms when reported */
  readonly at: number;
}

export interface SubmitBatch {
  batchId: string;
  path: string;
  cid: string;
  receiptsRoot: string;
  callsFrom: number;
  rows: number;
  receipts: number;
  amount: string;
}

const JSON_FIELDS = new Set(["txs", "outcome"]);
const NUMBER_FIELDS = new Set(["callsFrom", "rows", "receipts", "submittedAt", "submittedBlock", "nonce", "block", "finalAt"]);

export class SettlementStore {
  readonly tag: string;
  /** set by the settler holding the lease: its writes are fenced with the lease's token */
  fence: WriteFence | undefined;

  constructor(
    readonly redis: Redis,
    prefix: string,
    readonly chain: string,
  ) {
    this.tag = `{${prefix}:settler:${chain}}`;
  }

  key(name: string): string {
    return `${this.tag}:${name}`;
  }

  /** Records a new batch to settle. Idempotent: a batch already known keeps its record. Returns true when new. */
  async submit(batch: SubmitBatch, head: number, now = Date.now()): Promise<boolean> {
    const key = this.key(`batch:${batch.batchId}`);
    if ((await this.redis.exists(key)) === 1) return false;
    const seq = await this.redis.incr(this.key("seq"));
    const record: SettlementRecord = {
      ...batch,
      state: "queued",
      submittedAt: now,
      submittedBlock: head,
      nonce: null,
      gasLimit: null,
      txs: [],
      txHash: null,
      block: null,
      blockHash: null,
      gasUsed: null,
      outcome: null,
      note: null,
      finalAt: null,
    };
    const [[, created] = [null, 0]] = (await this.redis
      .multi()
      .hsetnx(key, "batchId", batch.batchId)
      .exec()) as [Error | null, number][];
    if (created !== 1) return false;
    await this.redis.multi().hset(key, encode(record)).zadd(this.key("active"), seq, batch.batchId).exec();
    return true;
  }

  async get(batchId: string): Promise<SettlementRecord | null> {
    const fields = await this.redis.hgetall(this.key(`batch:${batchId}`));
    if (fields.state === undefined) return null;
    return decode(fields);
  }

  /** Batches not yet final, in submission order. */
  async active(): Promise<SettlementRecord[]> {
    const ids = await this.redis.zrange(this.key("active"), 0, -1);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is SettlementRecord => r !== null);
  }

  /** Final batch ids, most recent last. */
  async finalIds(from = 0, to = -1): Promise<string[]> {
    return this.redis.zrange(this.key("final"), from, to);
  }

  async update(batchId: string, changes: Partial<SettlementRecord>): Promise<void> {
    await this.write([hset(this.key(`batch:${batchId}`), encode(changes))]);
  }

  /** Writes `ops` in one step, fenced when the settler holding the lease set `fence`. */
  private async write(ops: FencedOp[]): Promise<void> {
    // an HSET without fields is dropped (Redis refuses it); every other op (DEL of one key) is kept
    await writeOps(this.redis, this.fence, ops.filter((op) => op[0] !== "HSET" || op.length > 2));
  }

  /** Assigns the next nonce to a queued batch and stores its first signed transaction, in one step. */
  async assignNonce(
    signer: string,
    batchId: string,
    nonce: number,
    gasLimit: bigint,
    tx: SentTransaction,
  ): Promise<void> {
    await this.write([
      ["SET", this.key(`nonce:${signer.toLowerCase()}`), nonce + 1],
      hset(this.key(`batch:${batchId}`), encode({ state: "signed", nonce, gasLimit: gasLimit.toString(), txs: [tx], note: null })),
    ]);
  }

  async nextNonce(signer: string): Promise<number> {
    return Number((await this.redis.get(this.key(`nonce:${signer.toLowerCase()}`))) ?? 0);
  }

  async setNextNonce(signer: string, nonce: number): Promise<void> {
    await this.write([["SET", this.key(`nonce:${signer.toLowerCase()}`), nonce]]);
  }

  async finalize(record: SettlementRecord, counters: Record<string, number>, now = Date.now()): Promise<void> {
    const ops: FencedOp[] = [
      hset(this.key(`batch:${record.batchId}`), encode({ ...record, state: "final", finalAt: now })),
      ["ZREM", this.key("active"), record.batchId],
      ["ZADD", this.key("final"), now, record.batchId],
    ];
    for (const [name, value] of Object.entries(counters)) ops.push(["HINCRBY", this.key("stats"), name, value]);
    await this.write(ops);
  }

  /** Batch ids the router refused for good, most recent last. */
  async refusedIds(from = 0, to = -1): Promise<string[]> {
    return this.redis.zrange(this.key("refused"), from, to);
  }

  /** Takes a batch out of the active set for good (state "refused", with its note), counting it in the stats. */
  async refuse(record: SettlementRecord, counters: Record<string, number>, now = Date.now()): Promise<void> {
    const ops: FencedOp[] = [
      hset(this.key(`batch:${record.batchId}`), encode({ ...record, state: "refused", finalAt: now })),
      ["ZREM", this.key("active"), record.batchId],
      ["ZADD", this.key("refused"), now, record.batchId],
    ];
    for (const [name, value] of Object.entries(counters)) ops.push(["HINCRBY", this.key("stats"), name, value]);
    await this.write(ops);
  }

  /** The side transaction in flight, if any. */
  async side(): Promise<SideRecord | null> {
    const fields = await this.redis.hgetall(this.key("side"));
    if (fields.id === undefined) return null;
    return {
      id: fields.id,
      kind: fields.kind ?? "",
      data: fields.data ?? "0x",
      state: fields.state === "sent" ? "sent" : "signed",
      nonce: Number(fields.nonce),
      gasLimit: fields.gasLimit ?? "0",
      txs: JSON.parse(fields.txs ?? "[]") as SentTransaction[],
    };
  }

  /** Stores a newly signed side transaction and takes its nonce from the signer's sequence, in one step. */
  async assignSideNonce(signer: string, record: SideRecord): Promise<void> {
    await this.write([
      ["SET", this.key(`nonce:${signer.toLowerCase()}`), record.nonce + 1],
      ["DEL", this.key("side")],
      hset(this.key("side"), { ...record, nonce: String(record.nonce), txs: JSON.stringify(record.txs) }),
    ]);
  }

  async updateSide(changes: Partial<Pick<SideRecord, "state" | "txs">>): Promise<void> {
    const fields: Record<string, string> = {};
    if (changes.state !== undefined) fields.state = changes.state;
    if (changes.txs !== undefined) fields.txs = JSON.stringify(changes.txs);
    await this.write([hset(this.key("side"), fields)]);
  }

  async clearSide(): Promise<void> {
    await this.write([["DEL", this.key("side")]]);
  }

  /** Records which keys the settler holding the lease signs with (informational: nothing is sent because of it). */
  async setSigners(signers: SettlerSigners): Promise<void> {
    await this.write([hset(this.key("signers"), { active: signers.active, retiring: signers.retiring.join(","), at: signers.at })]);
  }

  /** The keys the settler last reported, or null when no settler has reported since this field exists. */
  async signers(): Promise<SettlerSigners | null> {
    const fields = await this.redis.hgetall(this.key("signers"));
    if (fields.active === undefined) return null;
    return { active: fields.active, retiring: fields.retiring === undefined || fields.retiring === "" ? [] : fields.retiring.split(","), at: Number(fields.at) };
  }

  async stats(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.key("stats"));
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }
}

export function feesOf(tx: SentTransaction): Fees {
  return { maxFeePerGas: BigInt(tx.maxFeePerGas), maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas) };
}

/** An HSET op of `fields` (dropped by write() when there is no field). */
function hset(key: string, fields: Record<string, string | number>): FencedOp {
  return ["HSET", key, ...Object.entries(fields).flat()];
}

function encode(record: Partial<SettlementRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(record)) {
    if (value === undefined) continue;
    out[field] = JSON_FIELDS.has(field) ? JSON.stringify(value) : value === null ? "" : String(value);
  }
  return out;
}

function decode(fields: Record<string, string>): SettlementRecord {
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (JSON_FIELDS.has(field)) out[field] = JSON.parse(value);
    else if (value === "") out[field] = null;
    else if (NUMBER_FIELDS.has(field)) out[field] = Number(value);
    else out[field] = value;
  }
  return out as unknown as SettlementRecord;
}
