/**
 * Up to when the backfill stage has read LiteLLM's spend records without a gap, shared by every relayer in Redis
 * (`{<prefix>:ingest}:backfill:covered`, epoch ms). A run reads from there when that is earlier than its usual window
 * (`now - lookback`): after LiteLLM's database, Redis or every relayer was down for longer than `lookback`, the next
 * good run reads the whole gap instead of leaving its calls unrecovered. Only moves forward.
 */
import type { RedisClient } from "../queue/index.js";

const ADVANCE = `
local current = tonumber(redis.call('GET', KEYS[1]))
local to = tonumber(ARGV[1])
if current == nil or current < to then redis.call('SET', KEYS[1], ARGV[1]) return to end
return current
`;

export class BackfillCoverage {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {}

  /** Epoch ms up to which every record was read, or null before the first good run. */
  async coveredUntil(): Promise<number | null> {
    const value = await this.redis.get(this.key);
    if (value === null) return null;
    const ms = Number(value);
    return Number.isSafeInteger(ms) ? ms : null;
  }

  /** Records a good run up to `toMs` (kept when a later one is already recorded); returns what is recorded now. */
  async advance(toMs: number): Promise<number> {
    return Number(await this.redis.eval(ADVANCE, 1, this.key, String(Math.floor(toMs))));
  }
}

/**
 * The range a scheduled run reads: [now - lookback, now - delay], started earlier at `covered` when the last good run
 * ended before that, but never before `horizon` (the dedupe records' reach, see dedupeSafeLookbackMs). `lost`: the
 * part of a gap older than the horizon, which cannot be read safely (it is left out, and said so).
 */
export function scheduledRange(
  now: number,
  settings: { readonly lookbackMs: number; readonly delayMs: number },
  covered: number | null,
  horizon: number,
): { readonly fromMs: number; readonly toMs: number; readonly catchingUp: boolean; readonly lost: { readonly fromMs: number; readonly toMs: number } | null } {
  const window = now - settings.lookbackMs;
  const toMs = now - settings.delayMs;
  if (covered === null || covered >= window) return { fromMs: window, toMs, catchingUp: false, lost: null };
  const fromMs = Math.max(covered, horizon);
  return { fromMs, toMs, catchingUp: true, lost: covered < horizon ? { fromMs: covered, toMs: horizon } : null };
}
