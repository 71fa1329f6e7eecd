/**
 * Durations ("32d", "5s", "250ms") and byte sizes ("64mb", "512kb") as written in YAML. A bare number is taken
 * in the base unit the field documents (seconds for durations, bytes for sizes).
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, rounded to a whole number. Throws an Error whose message shows the expected form. */
export function parseDurationMs(input: unknown): number {
  if (typeof input === "number" && Number.isFinite(input) && input >= 0) return Math.round(input * 1000);
  if (typeof input === "string") {
    const match = DURATION.exec(input.trim());
    if (match !== null) return Math.round(Number(match[1]) * DURATION_MS[match[2]!]!);
  }
  throw new Error(`${JSON.stringify(input)} is not a duration; write e.g. "32d", "30s" or "500ms" (a number is seconds)`);
}

/** Milliseconds as a duration written in YAML, in the largest unit that holds it exactly: 2_757_600_000 -> "766h". */
export function formatDurationMs(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) if (ms % DURATION_MS[unit]! === 0 && ms > 0) return `${ms / DURATION_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)$/i;
const SIZE_BYTES: Record<string, number> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Bytes, rounded down to a whole number. */
export function parseByteSize(input: unknown): number {
  if (typeof input === "number" && Number.isInteger(input) && input > 0) return input;
  if (typeof input === "string") {
    const match = SIZE.exec(input.trim());
    if (match !== null) return Math.floor(Number(match[1]) * SIZE_BYTES[match[2]!.toLowerCase()]!);
  }
  throw new Error(`${JSON.stringify(input)} is not a size; write e.g. "64mb" or "512kb" (a number is bytes)`);
}
