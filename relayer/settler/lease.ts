/**
 * A Redis lease: at most one settler process per chain holds it, so one signer has one nonce sequence. Taken with
 * SET NX PX, renewed by its owner only (compare-and-expire in Lua), released on shutdown. A holder that cannot
 * renew before the lease lapses must stop sending: `held` turns false.
 */
import { randomUUID } from "node:crypto";

import type { Redis } from "ioredis";

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class Lease {
  readonly owner = `${process.pid}:${randomUUID()}`;
  private expiresAt = 0;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    private readonly ttlMs: number,
  ) {}

  get held(): boolean {
    return Date.now() < this.expiresAt;
  }

  /** Tries to take or renew the lease; true when this process holds it. */
  async acquire(): Promise<boolean> {
    const started = Date.now();
    if (this.held) {
      const renewed = (await this.redis.eval(RENEW, 1, this.key, this.owner, this.ttlMs)) === 1;
      this.expiresAt = renewed ? started + this.ttlMs : 0;
      return renewed;
    }
    const taken = (await this.redis.set(this.key, this.owner, "PX", this.ttlMs, "NX")) === "OK";
    if (!taken && (await this.redis.get(this.key)) === this.owner) {
      // We still own it from before (e.g. a renewal reply was lost): renew.
      await this.redis.eval(RENEW, 1, this.key, this.owner, this.ttlMs);
      this.expiresAt = started + this.ttlMs;
      return true;
    }
    this.expiresAt = taken ? started + this.ttlMs : 0;
    return taken;
  }

  async release(): Promise<void> {
    this.expiresAt = 0;
    await this.redis.eval(RELEASE, 1, this.key, this.owner);
  }
}
