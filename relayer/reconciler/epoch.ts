/**
 * Epochs: UTC time intervals [start, end) in unix seconds. A batch belongs to the epoch its settlement block's time
 * falls in. `--epoch` takes a day (2025-06-01), an hour (2025-06-01T14), `today`, `yesterday`, or an explicit
 * `START/END` (ISO-8601 times with a zone, or unix seconds).
 */
export interface Epoch {
  /** unix seconds, inclusive */
  readonly start: number;
  /** unix seconds, exclusive */
  readonly end: number;
}

export class EpochError extends Error {
  override readonly name = "EpochError";
}

const DAY = 86_400;
const HOUR = 3_600;

export const EPOCH_FORMS =
  'a UTC day "2025-06-01", an hour "2025-06-01T14", "today", "yesterday", or "START/END" (ISO times with a zone, or unix seconds)';

/** Parses `--epoch`; `now` (unix seconds) resolves `today` and `yesterday`. */
export function parseEpoch(text: string, now: number): Epoch {
  const value = text.trim();
  if (value === "today" || value === "yesterday") {
    const start = Math.floor(now / DAY) * DAY - (value === "yesterday" ? DAY : 0);
    return { start, end: start + DAY };
  }
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (day !== null) {
    const start = utc(value, Number(day[1]), Number(day[2]), Number(day[3]), 0);
    return { start, end: start + DAY };
  }
  const hour = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})$/.exec(value);
  if (hour !== null) {
    const start = utc(value, Number(hour[1]), Number(hour[2]), Number(hour[3]), Number(hour[4]));
    return { start, end: start + HOUR };
  }
  const parts = value.split("/");
  if (parts.length === 2) {
    const start = instant(parts[0]!, value);
    const end = instant(parts[1]!, value);
    if (end <= start) throw new EpochError(`--epoch "${text}": the end must be after the start`);
    return { start, end };
  }
  throw new EpochError(`--epoch "${text}": write ${EPOCH_FORMS}`);
}

/** The epoch of length `seconds` (aligned to the Unix epoch, so days are UTC days) that contains `timestamp`. */
export function epochOf(timestamp: number, seconds: number): Epoch {
  const start = Math.floor(timestamp / seconds) * seconds;
  return { start, end: start + seconds };
}

export function formatEpoch(epoch: Epoch): string {
  return `${iso(epoch.start)} – ${iso(epoch.end)}`;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function utc(text: string, year: number, month: number, day: number, hour: number): number {
  const ms = Date.UTC(year, month - 1, day, hour);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23) {
    throw new EpochError(`--epoch "${text}": not a real date/hour; write ${EPOCH_FORMS}`);
  }
  return ms / 1000;
}

function instant(part: string, whole: string): number {
  const text = part.trim();
  if (/^\d{1,12}$/.test(text)) return Number(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    throw new EpochError(`--epoch "${whole}": "${text}" is neither unix seconds nor an ISO time with a zone (e.g. 2025-06-01T14:00Z)`);
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new EpochError(`--epoch "${whole}": "${text}" is not a real time`);
  return Math.floor(ms / 1000);
}
