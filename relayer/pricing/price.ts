/**
 * The exact price of one call, in thousandths of a token unit (`amountMilli`), with integer arithmetic only.
 *
 * - per_1k_tokens: amountMilli = tokens * pricePer1k (exact).
 * - response_cost: amountMilli = ceil(costUsd * unitsPerUsd * 1000), where costUsd is LiteLLM's response_cost
 *   read from its decimal text (never multiplied as a float). With a route ceiling, at most tokens * ceiling
 *   (and then `capped`). A zero cost means LiteLLM could not price the call: unpriced, never free.
 *
 * The batcher charges a row ceil(sum(amountMilli) / 1000), so rounding happens once per row, upwards.
 */
import { ceilDiv, parseDecimal, type RouteConfig, type RoutePricing, type UsdRate } from "../config/index.js";

export type Price =
  | {
      readonly ok: true;
      readonly amountMilli: bigint;
      readonly pricing: RoutePricing;
      /** the route's price (per_1k_tokens) or ceiling (response_cost), token units per 1k tokens */
      readonly pricePer1k: bigint | null;
      readonly capped: boolean;
    }
  | { readonly ok: false; readonly reason: "unpriced"; readonly detail: string };

export function priceCall(route: RouteConfig, tokens: number, responseCostUsd: string | null, usdRate: UsdRate | undefined): Price {
  if (!Number.isSafeInteger(tokens) || tokens <= 0) throw new RangeError(`priceCall: tokens must be a positive integer, got ${tokens}`);
  const count = BigInt(tokens);
  if (route.pricing === "per_1k_tokens") {
    if (route.pricePer1k === undefined) throw new Error(`route ${route.name} has no price`);
    return { ok: true, amountMilli: count * route.pricePer1k, pricing: "per_1k_tokens", pricePer1k: route.pricePer1k, capped: false };
  }
  if (usdRate === undefined) throw new Error(`route ${route.name} prices from response_cost but no pricing.usd_rate is set`);
  const cost = responseCostUsd === null ? undefined : parseDecimal(responseCostUsd);
  if (cost === undefined || cost.digits <= 0n) {
    return {
      ok: false,
      reason: "unpriced",
      detail: `route ${route.name} prices from response_cost, but LiteLLM sent ${responseCostUsd ?? "none"} (no price for this model in LiteLLM?)`,
    };
  }
  let amountMilli = ceilDiv(cost.digits * usdRate.num * 1000n, 10n ** BigInt(cost.scale) * usdRate.den);
  let capped = false;
  if (route.pricePer1k !== undefined) {
    const ceiling = count * route.pricePer1k;
    if (amountMilli > ceiling) {
      amountMilli = ceiling;
      capped = true;
    }
  }
  return { ok: true, amountMilli, pricing: "response_cost", pricePer1k: route.pricePer1k ?? null, capped };
}

/** What one receipt shows as its amount: ceil(amountMilli / 1000) token units. */
export function displayAmount(amountMilli: bigint): bigint {
  return ceilDiv(amountMilli, 1000n);
}
