/**
 * A circuit breaker per RPC endpoint: closed (in use) until `threshold` consecutive transport failures, then open
 * (skipped) for a cool-down that doubles on each re-opening up to `maxCooldownMs`; after the cool-down one trial
 * request is let through (half-open): success closes it, failure re-opens it.
 */
export type CircuitState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit (default 3) */
  threshold?: number;
  /** first cool-down (ms, default 2,000) */
  cooldownMs?: number;
  /** longest cool-down (ms, default 60,000) */
  maxCooldownMs?: number;
  now?: () => number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private cooldown: number;
  private trialInFlight = false;
  private readonly threshold: number;
  private readonly baseCooldown: number;
  private readonly maxCooldown: number;
  private readonly now: () => number;

  constructor(options: CircuitBreakerOptions = {}) {
    this.threshold = options.threshold ?? 3;
    this.baseCooldown = options.cooldownMs ?? 2000;
    this.maxCooldown = options.maxCooldownMs ?? 60_000;
    this.cooldown = this.baseCooldown;
    this.now = options.now ?? Date.now;
  }

  get state(): CircuitState {
    if (this.failures < this.threshold) return "closed";
    return this.now() - this.openedAt >= this.cooldown ? "half-open" : "open";
  }

  /** Whether a request may go to this endpoint now (takes the half-open trial slot if it is free). */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open" || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  onSuccess(): void {
    this.failures = 0;
    this.cooldown = this.baseCooldown;
    this.trialInFlight = false;
  }

  onFailure(): void {
    const wasHalfOpen = this.failures >= this.threshold;
    this.failures += 1;
    this.trialInFlight = false;
    if (wasHalfOpen) this.cooldown = Math.min(this.cooldown * 2, this.maxCooldown);
    if (this.failures >= this.threshold) this.openedAt = this.now();
  }
}
