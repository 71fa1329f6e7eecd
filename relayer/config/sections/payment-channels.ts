/**
 * `payment_channels:` and `auto_refill:` in the seed's format (loaded as written). A channel names the chain a
 * provider is paid on; providers without a channel settle on `default_chain`. `balance` and `strategy` are kept
 * for the settler and the monitor; ingest only reads `provider -> chain`.
 *
 * ```yaml
 * payment_channels:
 *   - provider: "openai"
 *     chain: "arbitrum"
 *     balance: "500 AGPT"
 *     strategy: "optimistic_rollups"
 * auto_refill:
 *   threshold: "50 AGPT"
 *   amount: "200 AGPT"
 *   gas_optimized: true
 * ```
 */
import { z } from "zod";

import { chainName, providerName, tokenAmount, type SectionContext } from "./fields.js";

export interface PaymentChannel {
  readonly provider: string;
  readonly chain: string;
  /** token units */
  readonly balance?: bigint | undefined;
  readonly strategy?: string | undefined;
}

export interface AutoRefillConfig {
  /** token units */
  readonly threshold: bigint;
  /** token units */
  readonly amount: bigint;
  readonly gasOptimized: boolean;
}

export const paymentChannelsSection = (ctx: SectionContext) =>
  z
    .array(
      z
        .strictObject({
          provider: providerName(),
          chain: chainName(),
          balance: tokenAmount(ctx).optional(),
          strategy: z.string().trim().min(1).optional(),
        })
        .transform(
          (channel): PaymentChannel => ({
            provider: channel.provider,
            chain: channel.chain,
            balance: channel.balance,
            strategy: channel.strategy,
          }),
        ),
    )
    .default([]);

export const autoRefillSection = (ctx: SectionContext) =>
  z
    .strictObject({
      threshold: tokenAmount(ctx),
      amount: tokenAmount(ctx),
      gas_optimized: z.boolean().default(false),
    })
    .transform(
      (refill): AutoRefillConfig => ({
        threshold: refill.threshold,
        amount: refill.amount,
        gasOptimized: refill.gas_optimized,
      }),
    )
    .optional();
