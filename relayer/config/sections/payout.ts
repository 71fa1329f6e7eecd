/**
 * `payout:` the release stage that `relayer start` runs beside each chain's settler (relayer/payout): every batch
 * whose dispute window has closed is released to its providers' credits, signed with the settler's key through the
 * settler's own transaction pipeline (one nonce sequence, the same fee bumps), by whichever host holds the chain's
 * settler lease. On by default; the section is only needed to change it.
 *
 * ```yaml
 * payout:
 *   enabled: true           # release batches after their dispute window (default true)
 *   interval: 30s           # how often due batches and new BatchSettled logs are looked for (default 30s, at least 100ms)
 *   lookback_blocks: 100000 # first start (no cursor stored yet): read BatchSettled logs this many blocks back (default 100000)
 *   log_chunk_blocks: 10000 # blocks per eth_getLogs (default 10000)
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface PayoutConfig {
  readonly enabled: boolean;
  readonly intervalMs: number;
  readonly lookbackBlocks: number;
  readonly logChunkBlocks: number;
}

const payoutFields = () =>
  z.strictObject({
    enabled: z.boolean().default(true),
    interval: durationMs()
      .default(30_000)
      .refine((ms) => ms >= 100, "at least 100ms"),
    lookback_blocks: z.int().min(0).max(100_000_000).default(100_000),
    log_chunk_blocks: z.int().min(1).max(1_000_000).default(10_000),
  });

function toConfig(p: z.output<ReturnType<typeof payoutFields>>): PayoutConfig {
  return { enabled: p.enabled, intervalMs: p.interval, lookbackBlocks: p.lookback_blocks, logChunkBlocks: p.log_chunk_blocks };
}

/** Absent, `payout:` alone (null) or `payout: {}`: enabled with every default. */
export const payoutSection = () =>
  payoutFields()
    .nullable()
    .optional()
    .transform((p): PayoutConfig => toConfig(p ?? payoutFields().parse({})));
