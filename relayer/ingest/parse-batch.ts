/**
 * One POST body -> queue submissions, with no I/O: split (json_array / ndjson / single), validate each entry,
 * price and map payers. Runs in the request thread or in a parse worker (parse-pool.ts); same code either way.
 */
import { isAscii } from "node:buffer";

import type { RelayerConfig } from "../config/index.js";
import { type PreparedSubmissions, prepareSubmissions, type Submission } from "../queue/index.js";
import { SubmissionBuilder } from "./build-submission.js";
import { type BodyFormat, parseBody } from "./parse-body.js";
import { type SpendLogParse, spendLogParser } from "./spend-log.js";

export interface InvalidDetail {
  readonly index: number;
  readonly reason: string;
  /** the entry's call id, when it had a usable one */
  readonly key?: string | undefined;
}

export type ParsedBatch =
  | {
      readonly ok: true;
      readonly format: BodyFormat;
      /** entries in the body, nulls and invalid ones included */
      readonly received: number;
      /** the valid entries, encoded for the queue in parts of at most ingest.max_chunk */
      readonly prepared: PreparedSubmissions[];
      readonly invalid: InvalidDetail[];
      readonly nulls: number;
    }
  | { readonly ok: false; readonly status: 400 | 413; readonly error: string; readonly reason: string };

export interface BatchContext {
  readonly builder: SubmissionBuilder;
  readonly parse: (entry: unknown) => SpendLogParse;
  /** most entries in one body (server.max_entries) */
  readonly maxEntries: number;
  /** most submissions per queued part (ingest.max_chunk) */
  readonly maxChunk: number;
}

export function batchContext(config: RelayerConfig): BatchContext {
  return {
    builder: SubmissionBuilder.fromConfig(config),
    parse: spendLogParser({ maxTokensPerCall: config.ingest.maxTokensPerCall }),
    maxEntries: config.server.maxEntries,
    maxChunk: config.ingest.maxChunk,
  };
}

export function parseBatch(body: string, receivedAt: number, context: BatchContext): ParsedBatch {
  const parsed = parseBody(body);
  if (!parsed.ok) return { ok: false, status: 400, error: "invalid_body", reason: parsed.reason };
  if (parsed.entries.length > context.maxEntries) {
    return {
      ok: false,
      status: 413,
      error: "too_many_entries",
      reason: `${parsed.entries.length} logs in one POST; at most ${context.maxEntries} (server.max_entries): lower LiteLLM's batch_size`,
    };
  }
  const invalid: InvalidDetail[] = [];
  const submissions: Submission[] = [];
  let nulls = 0;
  for (const entry of parsed.entries) {
    if ("error" in entry) {
      invalid.push({ index: entry.index, reason: entry.error });
      continue;
    }
    if (entry.value === null) {
      nulls += 1;
      continue;
    }
    const result = context.parse(entry.value);
    if (!result.ok) {
      invalid.push({ index: entry.index, reason: result.reason, key: keyOf(entry.value) });
      continue;
    }
    submissions.push(context.builder.build(result.log, receivedAt));
  }
  return { ok: true, format: parsed.format, received: parsed.entries.length, prepared: prepareSubmissions(submissions, context.maxChunk), invalid, nulls };
}

/**
 * The body as text. LiteLLM's JSON encoder escapes every non-ASCII character, so bodies are ASCII: then Latin-1
 * decoding gives the same string as UTF-8, about 30x faster (no validation). Anything else is decoded as UTF-8.
 * The chunks are joined as bytes first: one flat string, where joining decoded pieces would leave a rope that
 * JSON.parse flattens again (about 2.5 ms more per 3 MB body).
 */
export function decodeBody(chunks: readonly Uint8Array[]): string {
  const whole = chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength) : Buffer.concat(chunks);
  return whole.toString(isAscii(whole) ? "latin1" : "utf8");
}

function keyOf(value: unknown): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const record = value as Record<string, unknown>;
  const key = record["litellm_call_id"] ?? record["id"];
  return typeof key === "string" && key !== "" && key.length <= 256 ? key : undefined;
}
