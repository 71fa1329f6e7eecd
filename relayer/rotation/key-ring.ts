/**
 * The key ring: which relayer key signs now, which keys are retiring, and a key being created. One JSON value in
 * Redis for the whole deployment (one key is authorized on every chain), changed only by the process holding the
 * rotation lease, with a compare-and-set on `generation` so a lost lease can never overwrite a newer ring. Every
 * settlement process (the one sending and the standbys) follows it: when `generation` moves, its settlers take the
 * ring's keys between two passes (Settler.useKeys), exactly as a SIGHUP reload does.
 *
 * Keys:
 *   <prefix>:rotation:ring            the ring (JSON)
 *   <prefix>:rotation:lease           the one rotating process (Lease)
 *   <prefix>:rotation:revoke          list: addresses `agentgpt keys revoke` asked to revoke
 *   <prefix>:rotation:revoked:<addr>  the outcome of such a request (JSON, kept a day)
 */
import type { Redis } from "ioredis";

import type { RelayerKeyRef } from "./key-factory.js";

export interface RingKey {
  readonly address: string;
  readonly ref: RelayerKeyRef;
  /** ms: when the key became active (for `active`), or when it started retiring (for `retiring`) */
  readonly since: number;
  /** already revoked on every chain (the leaked-key drill): only waits for its transactions to end */
  readonly revoked?: boolean;
  /**
   * created by the leaked-key drill to replace the active key it revokes: a drill interrupted after the switch (a
   * failed transaction, a lost lease) and retried finds the key it asked for last in `retiring`, replaced for it
   */
  readonly drill?: boolean;
}

export interface KeyRingState {
  /** moves on every change the settlers must follow */
  readonly generation: number;
  readonly active: RingKey;
  readonly retiring: readonly RingKey[];
  /** a key created but not yet authorized everywhere (a crash resumes it instead of creating another) */
  readonly pending: RingKey | null;
  /** the active key was revoked without a replacement (`keys revoke --allow-none`): rotate as soon as allowed */
  readonly rotateNow?: boolean;
}

export interface RevokeOutcome {
  readonly address: string;
  readonly ok: boolean;
  /** what happened, or why not (with the fix) */
  readonly message: string;
  /** the key the settler moved to, when the revoked key was active */
  readonly replacedBy?: string;
  readonly at: number;
}

export interface RevokeRequest {
  /** the stored list entry */
  readonly raw: string;
  readonly address: string;
  /** revoke even the only live key (settlement stops until a new key is allowed) */
  readonly allowNone: boolean;
}

const SET_IF = `local current = redis.call('GET', KEYS[1])
if current then
  local g = cjson.decode(current)['generation']
  if tostring(g) ~= ARGV[2] then return 0 end
elseif ARGV[2] ~= '-1' then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

export class KeyRing {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(name: string): string {
    return `${this.prefix}:rotation:${name}`;
  }

  async get(): Promise<KeyRingState | null> {
    const text = await this.redis.get(this.key("ring"));
    return text === null ? null : (JSON.parse(text) as KeyRingState);
  }

  /** Writes `next` if the stored ring still has generation `expected` (-1: none stored yet). */
  async compareAndSet(next: KeyRingState, expected: number): Promise<boolean> {
    return (await this.redis.eval(SET_IF, 1, this.key("ring"), JSON.stringify(next), String(expected))) === 1;
  }

  /** Queues a revocation for the rotating process (or whoever takes the lease next). */
  async requestRevoke(address: string, allowNone: boolean): Promise<void> {
    await this.redis.del(this.key(`revoked:${address}`));
    await this.redis.rpush(this.key("revoke"), JSON.stringify({ address, allowNone }));
  }

  /** The oldest revoke request, left in the list until `finishRevoke` (a crash retries it). */
  async nextRevokeRequest(): Promise<RevokeRequest | null> {
    const raw = await this.redis.lindex(this.key("revoke"), 0);
    if (raw === null) return null;
    const parsed = JSON.parse(raw) as { address: string; allowNone: boolean };
    return { raw, address: parsed.address, allowNone: parsed.allowNone === true };
  }

  async finishRevoke(request: RevokeRequest, outcome: RevokeOutcome): Promise<void> {
    await this.redis
      .multi()
      .set(this.key(`revoked:${outcome.address}`), JSON.stringify(outcome), "EX", 86_400)
      .lrem(this.key("revoke"), 1, request.raw)
      .exec();
  }

  async revokeOutcome(address: string): Promise<RevokeOutcome | null> {
    const text = await this.redis.get(this.key(`revoked:${address}`));
    return text === null ? null : (JSON.parse(text) as RevokeOutcome);
  }
}
