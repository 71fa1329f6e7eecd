/**
 * zod field types shared by the config sections: amounts, prices and rates in the settlement token (exact
 * bigints), durations, sizes, addresses and names. Each turns a parser's error into a zod issue whose message
 * tells the user what to write.
 */
import { z } from "zod";

import { toPayerAddress } from "../address.js";
import { parsePricePer1k, parseTokenAmount, parseUsdRate, type TokenUnit } from "../amount.js";
import { parseByteSize, parseDurationMs } from "../units.js";

/** What sections need from the sections parsed before them. */
export interface SectionContext {
  readonly token: TokenUnit;
}

function parsed<T>(parse: (value: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    try {
      return parse(value);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message, input: value });
      return z.NEVER;
    }
  });
}

/** "500 AGPT" -> token units */
export const tokenAmount = (ctx: SectionContext) => parsed((value) => parseTokenAmount(value, ctx.token));
/** "0.12 AGPT/1k tokens" -> token units per 1,000 tokens */
export const pricePer1k = (ctx: SectionContext) => parsed((value) => parsePricePer1k(value, ctx.token));
/** "2.5 AGPT/USD" | "0.40 USD/AGPT" -> token units per USD, as a fraction */
export const usdRate = (ctx: SectionContext) => parsed((value) => parseUsdRate(value, ctx.token));
/** "32d" | "30s" | "250ms" | seconds -> milliseconds */
export const durationMs = () => parsed(parseDurationMs);
/** "64mb" | bytes -> bytes */
export const byteSize = () => parsed(parseByteSize);
/** a payer wallet -> its EIP-55 form (zero address and bad checksums refused) */
export const payerAddress = () => parsed(toPayerAddress);

/** Chain names become queue names and Redis keys: lowercase letters, digits and dashes. */
export const chainName = () =>
  z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/, 'a chain name is lowercase letters, digits and "-" (e.g. "arbitrum")');

/** On-chain provider names ("openai", "together-ai"); compared case-insensitively, stored lowercase. */
export const providerName = () =>
  z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a provider name is letters, digits, ".", "_" and "-" (e.g. "openai")')
    .transform((name) => name.toLowerCase());

/** Route names ("mission_critical"). */
export const routeName = () =>
  z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a route name is letters, digits, ".", "_" and "-" (e.g. "mission_critical")');
