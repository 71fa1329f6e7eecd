/**
 * The chain a provider is paid on: its payment channel (the seed's `payment_channels`), else the default chain.
 */
import type { PaymentChannel } from "../config/index.js";
import { normalizeProviderName } from "./route-table.js";

export class SettlementChains {
  private readonly byProvider: ReadonlyMap<string, string>;

  constructor(
    channels: readonly PaymentChannel[],
    readonly defaultChain: string,
  ) {
    this.byProvider = new Map(channels.map((channel) => [normalizeProviderName(channel.provider), channel.chain]));
  }

  chainFor(provider: string): string {
    return this.byProvider.get(normalizeProviderName(provider)) ?? this.defaultChain;
  }

  /** Every chain a receipt can be queued for. */
  get all(): string[] {
    return [...new Set([this.defaultChain, ...this.byProvider.values()])];
  }
}
