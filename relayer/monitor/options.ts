/**
 * The monitor's inputs, checked where they enter (command line or API query): granularity, time window and payer.
 * Every refusal is a MonitorError INVALID_INPUT whose message names the option and what to write instead.
 */
import { getAddress } from "ethers";

import { MonitorError } from "./errors.js";

export const GRANULARITIES = ["provider", "model", "user", "route"] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** Column title of each granularity in the table. */
export const GROUP_TITLE: Readonly<Record<Granularity, string>> = { provider: "Provider", model: "Model", user: "User", route: "Route" };

/** Shortest and longest window: a minute to 31 days (the chain's logs are read over the whole window). */
export const MIN_SINCE_MS = 60_000;
export const MAX_SINCE_MS = 31 * 86_400_000;

const DURATION = /^(\d+)(m|h|d)$/;
const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseGranularity(text: string, option = "--granularity"): Granularity {
  const value = text.trim().toLowerCase();
  if (!(GRANULARITIES as readonly string[]).includes(value)) {
    throw new MonitorError("INVALID_INPUT", `${option} ${text}: one of ${GRANULARITIES.join(", ")}`);
  }
  return value as Granularity;
}

/** "24h", "30m", "7d" -> milliseconds. */
export function parseSince(text: string, option = "--since"): number {
  const match = DURATION.exec(text.trim());
  const ms = match === null ? Number.NaN : Number(match[1]) * UNIT_MS[match[2]!]!;
  if (!Number.isSafeInteger(ms) || ms < MIN_SINCE_MS || ms > MAX_SINCE_MS) {
    throw new MonitorError("INVALID_INPUT", `${option} ${text}: a duration from 1m to 31d, e.g. 24h, 30m or 7d`);
  }
  return ms;
}

/** A payer address, EIP-55. A mixed-case address must carry a valid checksum (all lowercase skips the check). */
export function parseUser(text: string, option = "--user"): string {
  const value = text.trim();
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new MonitorError("INVALID_INPUT", `${option} ${text}: a payer address is 0x and 40 hex digits`);
  }
  try {
    return getAddress(value);
  } catch {
    throw new MonitorError("INVALID_INPUT", `${option} ${text}: the checksum (letter case) is wrong; check the address or write it all lowercase`);
  }
}

/** A window as "24h" / "90m" / "7d" (for headers): hours up to two days. */
export function describeWindow(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 2 * 86_400_000) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return `${Math.round(ms / 60_000)}m`;
}
