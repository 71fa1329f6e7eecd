/**
 * `pricing:` settings shared by every route.
 *
 * ```yaml
 * pricing:
 *   usd_rate: "2.5 AGPT/USD"   # or "0.40 USD/AGPT"; needed by routes with `pricing: response_cost`
 * ```
 */
import { z } from "zod";

import type { UsdRate } from "../amount.js";
import { usdRate, type SectionContext } from "./fields.js";

export interface PricingConfig {
  /** token units per USD (exact fraction) */
  readonly usdRate?: UsdRate | undefined;
}

export const pricingSection = (ctx: SectionContext) =>
  z
    .strictObject({ usd_rate: usdRate(ctx).optional() })
    .prefault({})
    .transform((pricing): PricingConfig => ({ usdRate: pricing.usd_rate }));
