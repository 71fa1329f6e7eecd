/**
 * A Redis lease with fencing: at most one process per chain runs a single-per-chain stage (settler, batcher,
 * reconciler, auto-disputer), so one signer has one nonce sequence and one batcher seals. Taken and renewed in one
 * Lua step (SET NX PX, compare-and-expire by its owner), released on shutdown. A holder that cannot renew before the
 * lease lapses must stop: `held` turns false.
 *
 * Fencing: every acquisition takes a new token from a counter next to the lease (INCR `fenceKey`: monotonic, never
 * reset by a release). The Lua scripts that write a stage's state compare the token they are given with the counter
 * and refuse (FENCED) when a newer one was issued, so a paused ex-holder whose lease lapsed (GC pause, SIGSTOP, a
 * partition) cannot write after a new holder took over, even if it still believes it holds the lease.
 *
 * Takeover: a holder renews every `renewMs` (default ttlMs / 3); when it dies its lease lapses at most `ttlMs` after
 * its last renewal, and a standby asking every `renewMs` takes over within `ttlMs + renewMs` of the holder's last
 * renewal (defaults: 15 s + 5 s = 20 s). The settler asks at each pass (every `settler.poll_ms`) instead.
 */
import { randomUUID } from "node:crypto";

import type { Redis } from "ioredis";
import type { Logger } from "pino";

// KEYS: lease, fence; ARGV: owner, ttlMs. Returns the holder's fencing token, or 0 when another process holds it.
const ACQUIRE = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local token = redis.call('GET', KEYS[2])
  if token then return tonumber(token) end
  return redis.call('INCR', KEYS[2])
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** A write refused because its fencing token is stale: another process took the lease over. */
export class FencedError extends Error {
  override readonly name = "FencedError";
}

/** Lua for a fenced write: KEYS[k] is the fence counter, ARGV[a] the writer's token ('' = unfenced). */
export function fenceCheck(keyIndex: number, argIndex: number, what = "lease"): string {
  return `
if ARGV[${argIndex}] ~= '' and redis.call('GET', KEYS[${keyIndex}]) ~= ARGV[${argIndex}] then
  return redis.error_reply('FENCED: the ${what} was taken over (token ' .. ARGV[${argIndex}] .. ' is stale)')
end
`;
}

export interface LeaseOptions {
  /** the fencing counter (same hash tag as `key`; default `<key>:fence`) */
  fenceKey?: string;
  /** ms between renewals (and a standby's attempts) when the lease runs on its own timer (start()); default ttlMs / 3 */
  renewMs?: number;
  /** for start(): logs when this process takes or loses the lease */
  logger?: Logger;
  /** what the lease is for, in logs ("batcher of chain local") */
  label?: string;
}

export class Lease {
  readonly owner = `${process.pid}:${randomUUID()}`;
  readonly fenceKey: string;
  readonly renewMs: number;
  private expiresAt = 0;
  private currentToken = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<unknown> | null = null;
  private wasHeld = false;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly ttlMs: number,
    private readonly options: LeaseOptions = {},
  ) {
    this.fenceKey = options.fenceKey ?? `${key}:fence`;
    this.renewMs = options.renewMs ?? Math.max(1, Math.floor(ttlMs / 3));
    if (!(this.renewMs < ttlMs)) throw new RangeError(`lease ${key}: renew interval ${this.renewMs} ms must be below its ttl ${ttlMs} ms`);
  }

  /** The longest a standby waits after the holder's last renewal before it takes over (ms). */
  get takeoverMs(): number {
    return this.ttlMs + this.renewMs;
  }

  get held(): boolean {
    return Date.now() < this.expiresAt;
  }

  /** The fencing token of the current holding (0 when never held); pass it to the fenced writes. */
  get token(): number {
    return this.currentToken;
  }

  /** `{ token }` for fenced writes while held; throws FencedError when the lease is not held. */
  fence(): { readonly token: number } {
    if (!this.held) throw new FencedError(`lease ${this.key} is not held by this process`);
    return { token: this.currentToken };
  }

  /** Tries to take or renew the lease; true when this process holds it. */
  async acquire(): Promise<boolean> {
    const started = Date.now();
    const token = Number(await this.redis.eval(ACQUIRE, 2, this.key, this.fenceKey, this.owner, this.ttlMs));
    if (token > 0) {
      this.currentToken = token;
      this.expiresAt = started + this.ttlMs;
      return true;
    }
    this.expiresAt = 0;
    return false;
  }

  /**
   * Keeps the lease (holder) or keeps trying to take it (standby) every `renewMs` until stop(). While `wanted`
   * says false (e.g. the holder cannot work: its chain is wrong) nothing is renewed, so the lease lapses and a
   * healthy standby can take over.
   */
  start(wanted: () => boolean = () => true): void {
    if (this.timer !== null) return;
    const round = () => {
      this.ticking = (wanted() ? this.acquire() : Promise.resolve(this.held))
        .then((held) => this.report(held))
        .catch((error: unknown) => {
          this.report(this.held);
          this.options.logger?.warn({ lease: this.key, err: error instanceof Error ? error.message : String(error) }, "lease renewal failed; retrying");
        })
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(round, this.renewMs);
        });
    };
    this.timer = setTimeout(round, 0);
  }

  /** Stops renewing (a holder keeps the lease until it lapses: release() gives it up now). */
  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking;
  }

  async release(): Promise<void> {
    await this.stop();
    this.expiresAt = 0;
    await this.redis.eval(RELEASE, 1, this.key, this.owner);
  }

  private report(held: boolean): void {
    if (held === this.wasHeld) return;
    this.wasHeld = held;
    const label = this.options.label ?? this.key;
    if (held) this.options.logger?.info({ lease: this.key, token: this.currentToken }, `took the lease: this process runs the ${label}`);
    else this.options.logger?.info({ lease: this.key, takeoverMs: this.takeoverMs }, `another process holds the lease of the ${label}: standing by`);
  }
}

// KEYS: fence, then the keys the ops name; ARGV: token, JSON [[command, keyIndex, ...args], ...]. The ops run only
// when the token is the last one issued (one atomic step, one slot: every key shares the fence's hash tag).
const FENCED_OPS = `${fenceCheck(1, 1)}
local ops = cjson.decode(ARGV[2])
for _, op in ipairs(ops) do
  local args = {}
  for i = 3, #op do args[#args + 1] = op[i] end
  redis.call(op[1], KEYS[op[2]], unpack(args))
end
return #ops
`;

/** One write of a fenced batch: a command, its key, its arguments. */
export type FencedOp = readonly [command: string, key: string, ...args: (string | number)[]];

/** Where a stage's writes are fenced: the lease's counter and the holder's token (read at each write). */
export interface WriteFence {
  readonly fenceKey: string;
  token(): number;
}

/**
 * Runs `ops` atomically: fenced (refused with FencedError, nothing written, when a newer token was issued) when
 * `fence` is given, else as a MULTI. Every key must share one hash tag with the fence.
 */
export async function writeOps(redis: Redis, fence: WriteFence | undefined, ops: readonly FencedOp[]): Promise<void> {
  if (ops.length === 0) return;
  if (fence === undefined) {
    const multi = redis.multi();
    for (const [command, key, ...args] of ops) multi.call(command, key, ...args);
    const results = await multi.exec();
    const failed = results?.find(([error]) => error !== null);
    if (failed) throw failed[0];
    return;
  }
  const keys = [fence.fenceKey];
  const encoded = ops.map(([command, key, ...args]) => {
    let index = keys.indexOf(key);
    if (index < 0) index = keys.push(key) - 1;
    return [command, index + 1, ...args.map(String)];
  });
  try {
    await redis.eval(FENCED_OPS, keys.length, ...keys, String(fence.token()), JSON.stringify(encoded));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (message.startsWith("FENCED")) throw new FencedError(message);
    throw error;
  }
}
