/**
 * The reconciler's own record of the disputes it opened, so it follows each one until it is resolved (asking the
 * oracle again after a failed or lost answer) across restarts. The chain stays the truth: this only lists what to
 * look at. Redis keys share the hash tag `{<prefix>:reconciler:<chain>}`:
 *
 *   <tag>:disputes   hash "<batchId>:<index>" -> JSON LedgerEntry
 *   <tag>:cursor     chain time (unix seconds) up to which settled batches were checked
 *   <tag>:epoch      start of the last epoch reported
 */
import type { Redis } from "ioredis";

export interface LedgerEntry {
  readonly batchId: string;
  readonly index: number;
  readonly payer: string;
  readonly openedTx: string;
  /** epoch ms */
  readonly openedAt: number;
  readonly reason: string;
}

export interface DisputeLedger {
  add(entry: LedgerEntry): Promise<void>;
  remove(batchId: string, index: number): Promise<void>;
  list(): Promise<LedgerEntry[]>;
  getNumber(name: "cursor" | "epoch"): Promise<number | null>;
  setNumber(name: "cursor" | "epoch", value: number): Promise<void>;
}

export class RedisDisputeLedger implements DisputeLedger {
  readonly tag: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    chain: string,
  ) {
    this.tag = `{${prefix}:reconciler:${chain}}`;
  }

  async add(entry: LedgerEntry): Promise<void> {
    await this.redis.hset(`${this.tag}:disputes`, fieldOf(entry.batchId, entry.index), JSON.stringify(entry));
  }

  async remove(batchId: string, index: number): Promise<void> {
    await this.redis.hdel(`${this.tag}:disputes`, fieldOf(batchId, index));
  }

  async list(): Promise<LedgerEntry[]> {
    const all = await this.redis.hgetall(`${this.tag}:disputes`);
    return Object.values(all).map((text) => JSON.parse(text) as LedgerEntry);
  }

  async getNumber(name: "cursor" | "epoch"): Promise<number | null> {
    const value = await this.redis.get(`${this.tag}:${name}`);
    return value === null ? null : Number(value);
  }

  async setNumber(name: "cursor" | "epoch", value: number): Promise<void> {
    await this.redis.set(`${this.tag}:${name}`, String(value));
  }
}

/** The same in memory, for one-off runs without Redis. */
export class MemoryDisputeLedger implements DisputeLedger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly numbers = new Map<string, number>();

  async add(entry: LedgerEntry): Promise<void> {
    this.entries.set(fieldOf(entry.batchId, entry.index), entry);
  }

  async remove(batchId: string, index: number): Promise<void> {
    this.entries.delete(fieldOf(batchId, index));
  }

  async list(): Promise<LedgerEntry[]> {
    return [...this.entries.values()];
  }

  async getNumber(name: "cursor" | "epoch"): Promise<number | null> {
    return this.numbers.get(name) ?? null;
  }

  async setNumber(name: "cursor" | "epoch", value: number): Promise<void> {
    this.numbers.set(name, value);
  }
}

function fieldOf(batchId: string, index: number): string {
  return `${batchId.toLowerCase()}:${index}`;
}
