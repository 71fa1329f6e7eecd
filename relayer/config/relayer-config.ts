/**
 * The relayer's configuration: one zod schema per top-level section (./sections), composed here, plus the checks
 * that span sections. Another stage adds its section with one file under ./sections, one line in
 * `relayerConfigShape` and one field in `RelayerConfig` (and `resolve`).
 */
import { z } from "zod";

import type { TokenUnit } from "./amount.js";
import type { ConfigOverride } from "./merge-sources.js";
import { formatDurationMs } from "./units.js";
import { agentgptSection, type BlockchainConfig } from "./sections/agentgpt.js";
import { backfillSection, type BackfillConfig } from "./sections/backfill.js";
import { chainsSection, defaultChainSection, type ChainConfig } from "./sections/chains.js";
import { dashboardSection, type DashboardConfig } from "./sections/dashboard.js";
import type { SectionContext } from "./sections/fields.js";
import { dedupeSafeLookbackMs, ingestSection, type IngestConfig } from "./sections/ingest.js";
import { metricsSection, type MetricsConfig } from "./sections/metrics.js";
import {
  autoRefillSection,
  paymentChannelsSection,
  type AutoRefillConfig,
  type PaymentChannel,
} from "./sections/payment-channels.js";
import { payersSection, type PayerRule } from "./sections/payers.js";
import { payoutSection, type PayoutConfig } from "./sections/payout.js";
import { pricingSection, type PricingConfig } from "./sections/pricing.js";
import { reconcilerSection, type ReconcilerConfig } from "./sections/reconciler.js";
import { redisSection, type RedisConfig } from "./sections/redis.js";
import { providerAliasesSection, routeAliasesSection, routesSection, type RouteConfig } from "./sections/routes.js";
import { serverSection, type ServerConfig } from "./sections/server.js";
import {
  archiveSection,
  batcherSection,
  settlerSection,
  type ArchiveConfig,
  type BatcherConfig,
  type SettlerConfig,
} from "./sections/settlement.js";
import { tokenSection } from "./sections/token.js";

export interface RelayerConfig {
  /** every file read, the main one first */
  readonly files: readonly string[];
  /** values of a later source that replaced an earlier source's (see load-config.ts); absent: none */
  readonly overrides?: readonly ConfigOverride[] | undefined;
  readonly token: TokenUnit;
  readonly server: ServerConfig;
  readonly redis: RedisConfig;
  readonly chains: readonly ChainConfig[];
  /** chain for providers without a payment channel */
  readonly defaultChain: string;
  /** routes in file order, `route_aliases` merged into each route's `aliases` */
  readonly routes: readonly RouteConfig[];
  /** LiteLLM provider name -> on-chain provider name (beyond lowercase and "_" -> "-") */
  readonly providerAliases: Readonly<Record<string, string>>;
  readonly paymentChannels: readonly PaymentChannel[];
  readonly autoRefill?: AutoRefillConfig | undefined;
  readonly blockchain: BlockchainConfig;
  readonly pricing: PricingConfig;
  readonly payers: readonly PayerRule[];
  readonly ingest: IngestConfig;
  /** absent: `relayer start` runs no reconciler */
  readonly reconciler?: ReconcilerConfig | undefined;
  readonly archive: ArchiveConfig;
  readonly batcher: BatcherConfig;
  readonly settler: SettlerConfig;
  /** absent: `relayer start` serves no dashboard */
  readonly dashboard?: DashboardConfig | undefined;
  /** absent: `relayer start` runs no backfill from LiteLLM's spend records */
  readonly backfill?: BackfillConfig | undefined;
  /** the release stage beside each settler (on unless `enabled: false`) */
  readonly payout: PayoutConfig;
  /** where a process without ingest serves /metrics and /readyz */
  readonly metrics: MetricsConfig;
}

/** The top-level keys, each with its section schema. `include` is handled by the loader before this runs. */
export const relayerConfigShape = (ctx: SectionContext) => ({
  include: z.array(z.string().min(1)).optional(),
  token: z.unknown().optional(), // parsed first, on its own, to give the other sections their context
  server: serverSection(),
  redis: redisSection(),
  chains: chainsSection(),
  default_chain: defaultChainSection(),
  routes: routesSection(ctx),
  route_aliases: routeAliasesSection(),
  provider_aliases: providerAliasesSection(),
  payment_channels: paymentChannelsSection(ctx),
  auto_refill: autoRefillSection(ctx),
  agentgpt: agentgptSection(),
  pricing: pricingSection(ctx),
  payers: payersSection(),
  ingest: ingestSection(),
  reconciler: reconcilerSection(ctx),
  archive: archiveSection(),
  batcher: batcherSection(),
  settler: settlerSection(),
  dashboard: dashboardSection(),
  backfill: backfillSection(),
  payout: payoutSection(),
  metrics: metricsSection(),
});

export const relayerConfigSchema = (ctx: SectionContext) => z.strictObject(relayerConfigShape(ctx));

export type ParsedSections = z.output<ReturnType<typeof relayerConfigSchema>>;

export { tokenSection };

/** A problem found across sections, at a path of the merged document. */
export interface CrossProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** Builds the RelayerConfig from parsed sections, or returns the cross-section problems. */
export function resolve(
  parsed: ParsedSections,
  token: TokenUnit,
  files: readonly string[],
): { config: RelayerConfig; problems: [] } | { config?: undefined; problems: CrossProblem[] } {
  const problems: CrossProblem[] = [];

  const routeIndex = new Map<string, number>();
  parsed.routes.forEach((route, index) => {
    if (routeIndex.has(route.name)) {
      problems.push({ path: ["routes", index, "route"], message: `route "${route.name}" is defined twice (also routes[${routeIndex.get(route.name)}])` });
    } else {
      routeIndex.set(route.name, index);
    }
    if (route.pricing === "response_cost" && parsed.pricing.usdRate === undefined) {
      problems.push({
        path: ["routes", index, "pricing"],
        message: `pricing: response_cost needs a USD rate: add pricing.usd_rate, e.g. "2.5 ${token.symbol}/USD"`,
      });
    }
  });
  for (const name of Object.keys(parsed.route_aliases)) {
    if (!routeIndex.has(name)) {
      problems.push({ path: ["route_aliases", name], message: `no route is named "${name}" (routes: ${[...routeIndex.keys()].join(", ") || "none"})` });
    }
  }

  const chainNames = new Set(parsed.chains.map((chain) => chain.name));
  const channelIndex = new Map<string, number>();
  parsed.payment_channels.forEach((channel, index) => {
    if (channelIndex.has(channel.provider)) {
      problems.push({
        path: ["payment_channels", index, "provider"],
        message: `provider "${channel.provider}" already has a payment channel (payment_channels[${channelIndex.get(channel.provider)}])`,
      });
    } else {
      channelIndex.set(channel.provider, index);
    }
    if (chainNames.size > 0 && !chainNames.has(channel.chain)) {
      problems.push({
        path: ["payment_channels", index, "chain"],
        message: `chain "${channel.chain}" is not under chains: (${[...chainNames].join(", ")}); add it there or fix the name`,
      });
    }
  });

  const defaultChain = parsed.default_chain ?? parsed.chains[0]?.name ?? parsed.payment_channels[0]?.chain;
  if (defaultChain === undefined) {
    problems.push({
      path: ["default_chain"],
      message: "no chain is configured: add chains: (e.g. arbitrum) or default_chain:, the chain receipts settle on",
    });
  } else if (chainNames.size > 0 && !chainNames.has(defaultChain)) {
    problems.push({ path: ["default_chain"], message: `chain "${defaultChain}" is not under chains: (${[...chainNames].join(", ")})` });
  }

  const mostLookbackMs = dedupeSafeLookbackMs(parsed.ingest.dedupeTtlMs);
  if (parsed.backfill !== undefined && parsed.backfill.lookbackMs > mostLookbackMs) {
    problems.push({
      path: ["backfill", "lookback"],
      message:
        `${formatDurationMs(parsed.backfill.lookbackMs)} reaches back past the dedupe records (ingest.dedupe_ttl ${formatDurationMs(parsed.ingest.dedupeTtlMs)}): ` +
        `a call billed and forgotten would be billed again; set lookback to at most ${formatDurationMs(mostLookbackMs)}, or raise ingest.dedupe_ttl`,
    });
  }

  const paymentToken = parsed.agentgpt.paymentToken;
  if (paymentToken !== undefined && paymentToken.toUpperCase() !== token.symbol.toUpperCase()) {
    problems.push({
      path: ["agentgpt", "blockchain", "payment_token"],
      message: `payment_token is ${paymentToken} but amounts are in ${token.symbol}: set token.symbol (and token.decimals) to match`,
    });
  }

  if (problems.length > 0 || defaultChain === undefined) return { problems };

  const routes = parsed.routes.map((route) => ({
    ...route,
    aliases: [...route.aliases, ...(parsed.route_aliases[route.name] ?? [])],
  }));
  return {
    problems: [],
    config: {
      files,
      token,
      server: parsed.server,
      redis: parsed.redis,
      chains: parsed.chains,
      defaultChain,
      routes,
      providerAliases: parsed.provider_aliases,
      paymentChannels: parsed.payment_channels,
      autoRefill: parsed.auto_refill,
      blockchain: parsed.agentgpt,
      pricing: parsed.pricing,
      payers: parsed.payers,
      ingest: parsed.ingest,
      reconciler: parsed.reconciler,
      archive: parsed.archive,
      batcher: parsed.batcher,
      settler: parsed.settler,
      dashboard: parsed.dashboard,
      backfill: parsed.backfill,
      payout: parsed.payout,
      metrics: parsed.metrics,
    },
  };
}
