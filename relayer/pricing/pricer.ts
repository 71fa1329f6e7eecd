/**
 * Route, price and chain of a call, from the configuration: the pricing stage as one call.
 */
import type { RelayerConfig, RouteConfig, RoutePricing } from "../config/index.js";
import { priceCall } from "./price.js";
import { type CallIdentity, RouteTable } from "./route-table.js";
import { SettlementChains } from "./settlement-chain.js";

export type Priced =
  | {
      readonly ok: true;
      readonly route: RouteConfig;
      readonly provider: string;
      readonly chain: string;
      readonly amountMilli: bigint;
      readonly pricing: RoutePricing;
      readonly pricePer1k: bigint | null;
      readonly capped: boolean;
    }
  | { readonly ok: false; readonly reason: "unknown_route" | "unpriced"; readonly detail: string };

export class Pricer {
  constructor(
    readonly routes: RouteTable,
    readonly chains: SettlementChains,
    private readonly config: Pick<RelayerConfig, "pricing">,
  ) {}

  static fromConfig(config: RelayerConfig): Pricer {
    return new Pricer(new RouteTable(config.routes, config.providerAliases), new SettlementChains(config.paymentChannels, config.defaultChain), config);
  }

  /** `tokens` > 0; `responseCostUsd` is LiteLLM's response_cost as decimal text. */
  price(call: CallIdentity, tokens: number, responseCostUsd: string | null): Priced {
    const match = this.routes.match(call);
    if (!match.ok) return { ok: false, reason: "unknown_route", detail: match.detail };
    const price = priceCall(match.route, tokens, responseCostUsd, this.config.pricing.usdRate);
    if (!price.ok) return price;
    return {
      ok: true,
      route: match.route,
      provider: match.provider,
      chain: this.chains.chainFor(match.provider),
      amountMilli: price.amountMilli,
      pricing: price.pricing,
      pricePer1k: price.pricePer1k,
      capped: price.capped,
    };
  }
}
