/**
 * `agentgpt:` the seed's blockchain block (loaded as written).
 *
 * ```yaml
 * agentgpt:
 *   blockchain:
 *     payment_token: "AGPT"   # must be token.symbol
 *     dispute_window: 3600    # seconds (or "1h"); what the contract is expected to use
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface BlockchainConfig {
  readonly paymentToken?: string | undefined;
  readonly disputeWindowSeconds?: number | undefined;
}

export const agentgptSection = () =>
  z
    .strictObject({
      blockchain: z
        .strictObject({
          payment_token: z.string().trim().min(1).optional(),
          dispute_window: durationMs().optional(),
        })
        .prefault({}),
    })
    .prefault({})
    .transform(
      (agentgpt): BlockchainConfig => ({
        paymentToken: agentgpt.blockchain.payment_token,
        disputeWindowSeconds:
          agentgpt.blockchain.dispute_window === undefined ? undefined : Math.round(agentgpt.blockchain.dispute_window / 1000),
      }),
    );
