/**
 * Amounts written for people ("500 AGPT", "0.12 AGPT/1k tokens", "2.5 AGPT/USD") parsed exactly into integer
 * token units (the token's smallest unit: 10^-decimals of a token). Every function throws an `AmountError`
 * whose message says what was expected, so the config loader can put it beside the file and line.
 */
import { type Decimal, parseDecimal, toScaledInteger } from "./decimal.js";

/** The settlement token: its symbol and its number of decimals (AGPT: 18). */
export interface TokenUnit {
  readonly symbol: string;
  readonly decimals: number;
}

export class AmountError extends Error {
  override readonly name = "AmountError";
  readonly code = "AMOUNT_INVALID";
}

/** Units per USD as an exact fraction `num / den` (den > 0). */
export interface UsdRate {
  readonly num: bigint;
  readonly den: bigint;
}

const NUMBER = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)`;
const SYMBOL = String.raw`[A-Za-z][A-Za-z0-9]*`;
const TOKEN_AMOUNT = new RegExp(String.raw`^(${NUMBER})\s*(${SYMBOL})$`);
const PRICE = new RegExp(String.raw`^(${NUMBER})\s*(${SYMBOL})\s*/\s*(?:(\d+(?:\.\d+)?)\s*([kKmM])?\s+)?tokens?$`);
const USD_RATE = new RegExp(String.raw`^(${NUMBER})\s*(${SYMBOL})\s*/\s*(${SYMBOL})$`);

function exampleAmount(token: TokenUnit): string {
  return `"500 ${token.symbol}"`;
}

function checkSymbol(symbol: string, token: TokenUnit, text: string): void {
  if (symbol.toUpperCase() !== token.symbol.toUpperCase()) {
    throw new AmountError(`"${text}" is in ${symbol}, but this relayer settles in ${token.symbol}`);
  }
}

function decimalOrThrow(numberText: string, text: string): Decimal {
  const value = parseDecimal(numberText);
  if (value === undefined) throw new AmountError(`"${text}" does not start with a number`);
  return value;
}

function unitsOf(value: Decimal, token: TokenUnit, text: string): bigint {
  try {
    return toScaledInteger(value, token.decimals);
  } catch {
    throw new AmountError(`"${text}" has more decimal places than ${token.symbol}'s ${token.decimals}`);
  }
}

/** "500 AGPT" -> 500 * 10^18. Negative amounts are refused. */
export function parseTokenAmount(input: unknown, token: TokenUnit): bigint {
  if (typeof input !== "string") {
    throw new AmountError(`write an amount with its token, e.g. ${exampleAmount(token)} (a bare number is ambiguous)`);
  }
  const text = input.trim();
  const match = TOKEN_AMOUNT.exec(text);
  if (match === null) throw new AmountError(`"${text}" is not an amount; write e.g. ${exampleAmount(token)}`);
  const [, numberText = "", symbol = ""] = match;
  checkSymbol(symbol, token, text);
  const units = unitsOf(decimalOrThrow(numberText, text), token, text);
  if (units < 0n) throw new AmountError(`"${text}" is negative`);
  return units;
}

const MULTIPLIER: Record<string, bigint> = { k: 1_000n, K: 1_000n, m: 1_000_000n, M: 1_000_000n };

/**
 * A price per 1,000 tokens in token units: "0.12 AGPT/1k tokens" -> 12 * 10^16. Also accepts "/1000 tokens",
 * "/1M tokens" and "/token"; the result must be a whole number of units per 1k tokens (so "1 AGPT/1M tokens"
 * is 10^15 units per 1k tokens, exact). Zero and negative prices are refused: a route that charges nothing
 * cannot settle (the contract rejects zero-amount rows).
 */
export function parsePricePer1k(input: unknown, token: TokenUnit): bigint {
  const example = `"0.12 ${token.symbol}/1k tokens"`;
  if (typeof input !== "string") throw new AmountError(`write a price with its unit, e.g. ${example}`);
  const text = input.trim();
  const match = PRICE.exec(text);
  if (match === null) throw new AmountError(`"${text}" is not a price per tokens; write e.g. ${example}`);
  const [, numberText = "", symbol = "", quantityText, suffix] = match;
  checkSymbol(symbol, token, text);
  const price = decimalOrThrow(numberText, text);
  const quantityDecimal = parseDecimal(quantityText ?? "1");
  if (quantityDecimal === undefined || quantityDecimal.scale !== 0 || quantityDecimal.digits <= 0n) {
    throw new AmountError(`"${text}": the token count after "/" must be a positive whole number (1k, 1000, 1M)`);
  }
  const perTokens = quantityDecimal.digits * (suffix === undefined ? 1n : (MULTIPLIER[suffix] ?? 1n));
  // units per `perTokens` tokens, scaled to units per 1,000 tokens: price * 10^decimals * 1000 / perTokens
  const scaled = price.digits * 10n ** BigInt(token.decimals) * 1000n;
  const denominator = 10n ** BigInt(price.scale) * perTokens;
  if (scaled % denominator !== 0n) {
    throw new AmountError(`"${text}" is not a whole number of ${token.symbol} units per 1k tokens`);
  }
  const per1k = scaled / denominator;
  if (per1k <= 0n) throw new AmountError(`"${text}" must be greater than zero`);
  return per1k;
}

/**
 * A USD exchange rate as token units per USD: "2.5 AGPT/USD" (tokens for one dollar) or "0.40 USD/AGPT"
 * (dollars for one token). Exact: the second form becomes the fraction 10^decimals / 0.40.
 */
export function parseUsdRate(input: unknown, token: TokenUnit): UsdRate {
  const example = `"2.5 ${token.symbol}/USD" or "0.40 USD/${token.symbol}"`;
  if (typeof input !== "string") throw new AmountError(`write the rate with its units, e.g. ${example}`);
  const text = input.trim();
  const match = USD_RATE.exec(text);
  if (match === null) throw new AmountError(`"${text}" is not a USD rate; write e.g. ${example}`);
  const [, numberText = "", top = "", bottom = ""] = match;
  const value = decimalOrThrow(numberText, text);
  if (value.digits <= 0n) throw new AmountError(`"${text}" must be greater than zero`);
  const one = 10n ** BigInt(token.decimals);
  if (top.toUpperCase() === token.symbol.toUpperCase() && bottom.toUpperCase() === "USD") {
    return reduce({ num: value.digits * one, den: 10n ** BigInt(value.scale) });
  }
  if (top.toUpperCase() === "USD" && bottom.toUpperCase() === token.symbol.toUpperCase()) {
    return reduce({ num: one * 10n ** BigInt(value.scale), den: value.digits });
  }
  throw new AmountError(`"${text}" must be ${token.symbol}/USD or USD/${token.symbol}; write e.g. ${example}`);
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function reduce(rate: UsdRate): UsdRate {
  const divisor = gcd(rate.num, rate.den);
  return { num: rate.num / divisor, den: rate.den / divisor };
}

/** Units as token text: 120000000000000000n -> "0.12 AGPT". */
export function formatTokenAmount(units: bigint, token: TokenUnit): string {
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(token.decimals + 1, "0");
  const whole = text.slice(0, text.length - token.decimals);
  const fraction = text.slice(text.length - token.decimals).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction === "" ? "" : `.${fraction}`} ${token.symbol}`;
}
