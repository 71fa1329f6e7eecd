/**
 * `routes:` what a call costs, in the seed's `litellm-router.yaml` format (loaded as written), plus two optional
 * keys of ours. A LiteLLM log selects the first route whose model matches (its `model_group`, or its `model`
 * without the provider prefix, equals the route's `model`, name or an alias) and whose providers include the
 * provider that served the call.
 *
 * ```yaml
 * routes:
 *   - route: "mission_critical"
 *     model: "gpt-4-turbo"              # the on-chain model name receipts are billed under
 *     budget: 0.12 AGPT/1k tokens       # the price charged per 1k tokens (`price:` is a synonym)
 *     providers:                        # on-chain provider names; "@..." names a deployment (informational)
 *       - openai@az-westus
 *   - route: "metered"
 *     model: "claude-3-opus"
 *     pricing: response_cost            # ours: price from LiteLLM's response_cost (USD) at pricing.usd_rate
 *     budget: 0.5 AGPT/1k tokens        # with response_cost, an optional ceiling per 1k tokens
 *     providers: [anthropic]
 *     aliases: [claude-3-opus-20240229] # ours: more model names / model groups that select this route
 * route_aliases:                        # ours, for routes defined in a file you keep as written
 *   cost_optimized: [mixtral, mixtral-8x7b-32768]
 * provider_aliases:                     # LiteLLM's custom_llm_provider -> on-chain provider name
 *   fireworks_ai: firework-ai           # (after the default mapping: lowercase, "_" -> "-")
 * ```
 */
import { z } from "zod";

import { pricePer1k, providerName, routeName, type SectionContext } from "./fields.js";

export type RoutePricing = "per_1k_tokens" | "response_cost";

export interface RouteProvider {
  /** on-chain provider name, lowercase ("openai") */
  readonly name: string;
  /** the part after "@" ("az-westus"), if any */
  readonly deployment?: string | undefined;
}

export interface RouteConfig {
  readonly name: string;
  /** on-chain model name */
  readonly model: string;
  readonly pricing: RoutePricing;
  /** token units per 1k tokens: the price (per_1k_tokens) or the ceiling (response_cost, optional) */
  readonly pricePer1k?: bigint | undefined;
  readonly providers: readonly RouteProvider[];
  /** more model names / model groups that select this route */
  readonly aliases: readonly string[];
}

const providerRef = () =>
  z
    .string()
    .trim()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/,
      'a provider is "name" or "name@deployment" (e.g. openai@az-westus)',
    )
    .transform((text): RouteProvider => {
      const [name = "", deployment] = text.split("@");
      return { name: name.toLowerCase(), deployment };
    });

export const routesSection = (ctx: SectionContext) =>
  z
    .array(
      z
        .strictObject({
          route: routeName(),
          model: z.string().trim().min(1).max(128),
          budget: pricePer1k(ctx).optional(),
          price: pricePer1k(ctx).optional(),
          pricing: z.enum(["per_1k_tokens", "response_cost"]).default("per_1k_tokens"),
          providers: z.array(providerRef()).min(1, "list at least one provider"),
          aliases: z.array(z.string().trim().min(1)).default([]),
        })
        .superRefine((route, issues) => {
          if (route.budget !== undefined && route.price !== undefined) {
            issues.addIssue({ code: "custom", path: ["price"], message: "give either budget or price, not both" });
          }
          if (route.pricing === "per_1k_tokens" && route.budget === undefined && route.price === undefined) {
            issues.addIssue({
              code: "custom",
              path: ["budget"],
              message: `a per-1k-tokens route needs its price, e.g. budget: 0.12 ${ctx.token.symbol}/1k tokens`,
            });
          }
        })
        .transform(
          (route): RouteConfig => ({
            name: route.route,
            model: route.model,
            pricing: route.pricing,
            pricePer1k: route.budget ?? route.price,
            providers: route.providers,
            aliases: route.aliases,
          }),
        ),
    )
    .default([]);

export const routeAliasesSection = () => z.record(routeName(), z.array(z.string().trim().min(1))).default({});

export const providerAliasesSection = () => z.record(z.string().trim().min(1), providerName()).default({});
