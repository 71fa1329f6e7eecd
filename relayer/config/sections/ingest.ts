/**
 * `ingest:` limits and timings of the receipt front door.
 *
 * ```yaml
 * ingest:
 *   dedupe_ttl: 32d               # how long a LiteLLM call id is remembered (re-sends inside it are duplicates)
 *   max_tokens_per_call: 10000000 # a log claiming more tokens than this is refused as invalid
 *   max_chunk: 1000               # most receipts in one queued chunk (one BullMQ job)
 *   sweep_interval: 30s           # how often chunks whose job went missing are re-queued
 *   sweep_grace: 10s              # a chunk younger than this is left to the request that wrote it
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface IngestConfig {
  readonly dedupeTtlMs: number;
  readonly maxTokensPerCall: number;
  readonly maxChunk: number;
  readonly sweepIntervalMs: number;
  readonly sweepGraceMs: number;
}

/**
 * How far back from now a backfill may read LiteLLM's spend records: the calls that started since then still have
 * their dedupe records in Redis. A record lives dedupe_ttl from when its log was received, which is after the call
 * started; less a margin for the clocks of LiteLLM's database and of Redis (a tenth of dedupe_ttl, at most 1 h).
 * Past it, a call billed and forgotten would be billed again.
 */
export function dedupeSafeLookbackMs(dedupeTtlMs: number): number {
  return dedupeTtlMs - Math.min(3_600_000, Math.floor(dedupeTtlMs / 10));
}

export const ingestSection = () =>
  z
    .strictObject({
      dedupe_ttl: durationMs()
        .default(32 * 86_400_000)
        .refine((ms) => ms >= 60_000, "keep call ids for at least a minute (e.g. 32d)"),
      max_tokens_per_call: z.int().min(1).max(1_000_000_000_000).default(10_000_000),
      max_chunk: z.int().min(1).max(10_000).default(1000),
      sweep_interval: durationMs()
        .default(30_000)
        .refine((ms) => ms >= 100, "at least 100ms"),
      sweep_grace: durationMs().default(10_000),
    })
    .prefault({})
    .transform(
      (ingest): IngestConfig => ({
        dedupeTtlMs: ingest.dedupe_ttl,
        maxTokensPerCall: ingest.max_tokens_per_call,
        maxChunk: ingest.max_chunk,
        sweepIntervalMs: ingest.sweep_interval,
        sweepGraceMs: ingest.sweep_grace,
      }),
    );
