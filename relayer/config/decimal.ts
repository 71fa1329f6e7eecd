/**
 * Exact decimal text. A value is `digits / 10^scale`; nothing here ever goes through a binary float, so
 * "0.12", "8.4e-05" and "1718035200.412311" keep every digit they were written with.
 */

export interface Decimal {
  /** the digits, sign included */
  readonly digits: bigint;
  /** how many of those digits sit after the decimal point (>= 0) */
  readonly scale: number;
}

/** Largest exponent accepted in scientific notation; keeps a hostile "1e999999" from building a huge bigint. */
const MAX_EXPONENT = 96;

const DECIMAL_TEXT = /^([+-]?)(\d+)?(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/;

/**
 * Parses decimal text ("12", "-0.5", ".25", "1.5e-7", "2E3"). Returns undefined for anything else, including
 * "", ".", "NaN", "Infinity", hex and thousands separators.
 */
export function parseDecimal(text: string): Decimal | undefined {
  const match = DECIMAL_TEXT.exec(text.trim());
  if (match === null) return undefined;
  const [, sign = "", whole = "", fraction = "", exponentText] = match;
  if (whole === "" && fraction === "") return undefined;
  const exponent = exponentText === undefined ? 0 : Number(exponentText);
  if (Math.abs(exponent) > MAX_EXPONENT) return undefined;
  let digits = BigInt(`${whole}${fraction}` || "0");
  let scale = fraction.length - exponent;
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  if (sign === "-") digits = -digits;
  return normalize({ digits, scale });
}

/** Drops trailing zeros after the point: 1.500 -> 1.5 (scale 1). */
export function normalize(value: Decimal): Decimal {
  let { digits, scale } = value;
  while (scale > 0 && digits % 10n === 0n) {
    digits /= 10n;
    scale -= 1;
  }
  return { digits, scale };
}

/**
 * The decimal text of a JavaScript number, exactly as JSON wrote it when it came from JSON: `String(n)` prints
 * the shortest text that reads back as the same double, which is also what Python's `repr` (and so LiteLLM's
 * JSON encoder) prints. Returns undefined for NaN and the infinities.
 */
export function decimalOfNumber(value: number): Decimal | undefined {
  if (!Number.isFinite(value)) return undefined;
  return parseDecimal(String(value));
}

/** Scales `value` to `decimals` places. Throws a RangeError when digits would be lost. */
export function toScaledInteger(value: Decimal, decimals: number): bigint {
  if (value.scale <= decimals) return value.digits * 10n ** BigInt(decimals - value.scale);
  const divisor = 10n ** BigInt(value.scale - decimals);
  if (value.digits % divisor !== 0n) {
    throw new RangeError(`has more than ${decimals} decimal places`);
  }
  return value.digits / divisor;
}

/** ceil(numerator / denominator) for numerator >= 0 and denominator > 0. */
export function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError("ceilDiv: denominator must be positive");
  if (numerator < 0n) throw new RangeError("ceilDiv: numerator must not be negative");
  return (numerator + denominator - 1n) / denominator;
}

/** Prints a Decimal back as plain text (no exponent): { digits: 84n, scale: 6 } -> "0.000084". */
export function formatDecimal(value: Decimal): string {
  const negative = value.digits < 0n;
  const text = (negative ? -value.digits : value.digits).toString().padStart(value.scale + 1, "0");
  const whole = text.slice(0, text.length - value.scale);
  const fraction = text.slice(text.length - value.scale);
  return `${negative ? "-" : ""}${whole}${fraction === "" ? "" : `.${fraction}`}`;
}
