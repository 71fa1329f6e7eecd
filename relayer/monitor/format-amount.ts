/**
 * Exact token amounts for people: integer units shown with the token's decimals, never through a float.
 * Trailing zeros of the fraction are dropped; the whole part is grouped by thousands ("12,891.5").
 */

/** `units` (10^-decimals of a token) as decimal text: formatUnits(182340000000000000000n, 18) = "182.34". */
export function formatUnits(units: bigint, decimals: number, options: { group?: boolean } = {}): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, "");
  const grouped = options.group === false ? whole : groupThousands(whole);
  return `${negative ? "-" : ""}${grouped}${fraction === "" ? "" : `.${fraction}`}`;
}

/**
 * Decimals shown for an amount that is an estimate (priced, not yet settled: it is rounded into rows only when its
 * batch settles). Exact amounts (settled, escrowed, credited) keep every decimal of the token.
 */
export const DISPLAY_DECIMALS = 6;

/**
 * Thousandths of a unit rounded half up to `places` decimals (at most the token's): "0.000124", not the 21 decimals
 * of the exact figure. A positive amount that rounds to zero is shown as "<0.000001".
 */
export function formatMilliRounded(milli: bigint, decimals: number, places = DISPLAY_DECIMALS, options: { group?: boolean } = {}): string {
  const shown = Math.min(places, decimals);
  const divisor = 10n ** BigInt(decimals + 3 - shown);
  const negative = milli < 0n;
  const magnitude = negative ? -milli : milli;
  const rounded = (magnitude + divisor / 2n) / divisor;
  if (rounded === 0n && magnitude > 0n) return `${negative ? ">-" : "<"}${formatUnits(1n, shown, options)}`;
  return formatUnits(negative ? -rounded : rounded, shown, options);
}

/** Thousandths of a unit (a receipt's `amountMilli`): exact, with three more decimals than the token. */
export function formatMilli(milli: bigint, decimals: number, options: { group?: boolean } = {}): string {
  return formatUnits(milli, decimals + 3, options);
}

/** "26597" -> "26,597" */
export function formatCount(count: number): string {
  return groupThousands(String(count));
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
