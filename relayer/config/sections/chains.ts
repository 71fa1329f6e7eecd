/**
 * `chains:` the chains receipts settle on, and `default_chain:` for providers without a payment channel.
 * Ingest only needs the names (one receipt queue per chain); the batcher and settler settle every chain that has
 * RPC URLs, with the `settler:` section's signer and fees unless the chain overrides them.
 *
 * ```yaml
 * chains:
 *   arbitrum:
 *     chain_id: 42161
 *     rpc_urls: ["${ARBITRUM_RPC_URL:-https://arb1.arbitrum.io/rpc}"]   # several for fail-over, in order of preference
 *     confirmations: 1
 *     router: "0x..."          # AutoPayLLM; default: deploy/deployments/chain-<chain_id>/deployed_addresses.json
 *     rotator: "0x..."         # RelayerKeyRotator (settler.rotation, keys revoke); default: the deployment's
 *     replacement: resubmit    # stuck transactions: "bump" fees, or "resubmit" unchanged (default: resubmit on
 *                              # Arbitrum, which has no public mempool; bump elsewhere)
 *     signer: { keystore: ./keys/arbitrum.json }   # overrides settler.signer
 *     fees: { max_fee: 2 gwei }                    # overrides settler.fees
 *     min_signer_balance: 0.02                     # overrides settler.min_signer_balance (native coin)
 * default_chain: arbitrum   # default: the first chain listed, else the first payment channel's chain
 * ```
 */
import { getAddress } from "ethers";
import { z } from "zod";

import { chainName } from "./fields.js";
import { feesSection, nativeAmount, signerSection, type FeeOverrides, type SignerConfig } from "./settlement.js";

export interface ChainConfig {
  readonly name: string;
  readonly chainId?: number | undefined;
  readonly rpcUrls: readonly string[];
  readonly confirmations: number;
  readonly router?: string | undefined;
  /** RelayerKeyRotator; default: the deployment's, when it has one */
  readonly rotator?: string | undefined;
  readonly replacement?: "bump" | "resubmit" | undefined;
  readonly signer?: SignerConfig | undefined;
  readonly fees?: FeeOverrides | undefined;
  /** wei; overrides settler.minSignerBalance */
  readonly minSignerBalance?: bigint | undefined;
}

const contractAddress = () =>
  z.string().transform((value, ctx) => {
    try {
      return getAddress(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not an address (0x and 40 hex digits, checksum optional)`, input: value });
      return z.NEVER;
    }
  });

export const chainsSection = () =>
  z
    .record(
      chainName(),
      z
        .strictObject({
          chain_id: z.int().positive().optional(),
          rpc_urls: z.array(z.string().regex(/^(https?|wss?):\/\/\S+$/, "an RPC URL (http://, https://, ws:// or wss://)")).default([]),
          confirmations: z.int().min(1, "at least 1: a batch is final once its block is included").max(10_000).default(1),
          router: contractAddress().optional(),
          rotator: contractAddress().optional(),
          replacement: z.enum(["bump", "resubmit"]).optional(),
          signer: signerSection().optional(),
          fees: feesSection().optional(),
          min_signer_balance: nativeAmount().optional(),
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
        router: chain.router,
        rotator: chain.rotator,
        replacement: chain.replacement,
        signer: chain.signer,
        fees: chain.fees,
        minSignerBalance: chain.min_signer_balance,
      })),
    );

export const defaultChainSection = () => chainName().optional();
