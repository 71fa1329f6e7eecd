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
