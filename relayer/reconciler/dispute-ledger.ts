/**
 * The reconciler's list of the disputes open on the router (its own and everyone else's), so it follows each one
 * until it closes (starting or retrying the oracle's verification, settling it once expired) across restarts. The
 * chain stays the truth: this only lists what to look at. Redis keys share the hash tag `{<prefix>:reconciler:<chain>}`:
 *
 *   <tag>:disputes     hash "<disputeId>" -> JSON LedgerEntry
 *   <tag>:cursor       chain time (unix seconds) up to which settled batches were checked
 *   <tag>:epoch        start of the last epoch reported
 *   <tag>:disputeBlock the last block whose DisputeOpened logs were read
 *   <tag>:lease        the reconciler lease of this chain (one reconciler and auto-disputer per chain, see
 *                      relayer/settler/lease.ts); <tag>:lease:fence its fencing counter: with `fence` set, every write
 *                      checks the holder's token first (a reconciler paused past its lease writes nothing)
 */
import type { Redis } from "ioredis";

import { writeOps, type WriteFence } from "../settler/lease.js";

export interface LedgerEntry {
  readonly disputeId: string;
  readonly payer: string;
  /** opened by this reconciler (for one of its payers) */
  readonly mine: boolean;
  readonly openedTx?: string | undefined;
  /** epoch ms when it was listed */
  readonly listedAt: number;
  readonly reason?: string | undefined;
}

export type LedgerNumber = "cursor" | "epoch" | "disputeBlock";

export interface DisputeLedger {
  add(entry: LedgerEntry): Promise<void>;
  remove(disputeId: string): Promise<void>;
  list(): Promise<LedgerEntry[]>;
  getNumber(name: LedgerNumber): Promise<number | null>;
  setNumber(name: LedgerNumber, value: number): Promise<void>;
}

export class RedisDisputeLedger implements DisputeLedger {
  readonly tag: string;
  /** set by the service holding the reconciler lease: every write is fenced with its token */
  fence: WriteFence | undefined;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    chain: string,
  ) {
    this.tag = `{${prefix}:reconciler:${chain}}`;
  }

  async add(entry: LedgerEntry): Promise<void> {
    await writeOps(this.redis, this.fence, [["HSET", `${this.tag}:disputes`, entry.disputeId.toLowerCase(), JSON.stringify(entry)]]);
  }

  async remove(disputeId: string): Promise<void> {
    await writeOps(this.redis, this.fence, [["HDEL", `${this.tag}:disputes`, disputeId.toLowerCase()]]);
  }

  async list(): Promise<LedgerEntry[]> {
    const all = await this.redis.hgetall(`${this.tag}:disputes`);
    return Object.values(all).map((text) => JSON.parse(text) as LedgerEntry);
  }

  /** The key of this chain's reconciler lease (same hash tag as the ledger). */
  get leaseKey(): string {
    return `${this.tag}:lease`;
  }

  async getNumber(name: LedgerNumber): Promise<number | null> {
    const value = await this.redis.get(`${this.tag}:${name}`);
    return value === null ? null : Number(value);
  }

  async setNumber(name: LedgerNumber, value: number): Promise<void> {
    await writeOps(this.redis, this.fence, [["SET", `${this.tag}:${name}`, String(value)]]);
  }
}

/** The same in memory, for one-off runs without Redis. */
export class MemoryDisputeLedger implements DisputeLedger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly numbers = new Map<string, number>();

  async add(entry: LedgerEntry): Promise<void> {
    this.entries.set(entry.disputeId.toLowerCase(), entry);
  }

  async remove(disputeId: string): Promise<void> {
    this.entries.delete(disputeId.toLowerCase());
  }

  async list(): Promise<LedgerEntry[]> {
    return [...this.entries.values()];
  }

  async getNumber(name: LedgerNumber): Promise<number | null> {
    return this.numbers.get(name) ?? null;
  }

  async setNumber(name: LedgerNumber, value: number): Promise<void> {
    this.numbers.set(name, value);
  }
}

