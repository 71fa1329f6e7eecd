/**
 * `chains:` the chains receipts settle on, and `default_chain:` for providers without a payment channel.
 * Ingest only needs the names (one receipt queue per chain); the settler reads RPC URLs and confirmations.
 *
 * ```yaml
 * chains:
 *   arbitrum:
 *     chain_id: 42161
 *     rpc_urls: ["${ARBITRUM_RPC_URL:-https://arb1.arbitrum.io/rpc}"]   # several for fail-over
 *     confirmations: 1
 * default_chain: arbitrum   # default: the first chain listed, else the first payment channel's chain
 * ```
 */
import { z } from "zod";

import { chainName } from "./fields.js";

export interface ChainConfig {
  readonly name: string;
  readonly chainId?: number | undefined;
  readonly rpcUrls: readonly string[];
  readonly confirmations: number;
}

export const chainsSection = () =>
  z
    .record(
      chainName(),
      z
        .strictObject({
          chain_id: z.int().positive().optional(),
          rpc_urls: z.array(z.string().regex(/^(https?|wss?):\/\/\S+$/, "an RPC URL (http://, https://, ws:// or wss://)")).default([]),
          confirmations: z.int().min(0).max(10_000).default(1),
        })
        .prefault({}),
    )
    .default({})
    .transform((chains): ChainConfig[] =>
      Object.entries(chains).map(([name, chain]) => ({
        name,
        chainId: chain.chain_id,
        rpcUrls: chain.rpc_urls,
        confirmations: chain.confirmations,
      })),
    );

export const defaultChainSection = () => chainName().optional();
