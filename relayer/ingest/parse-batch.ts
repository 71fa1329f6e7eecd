/**
 * One POST body -> queue submissions, with no I/O: split (json_array / ndjson / single), validate each entry,
 * price and map payers. Runs in the request thread or in a parse worker (parse-pool.ts); same code either way.
 */
import type { RelayerConfig } from "../config/index.js";
import { type PreparedSubmissions, prepareSubmissions, type Submission } from "../queue/index.js";
import { SubmissionBuilder } from "./build-submission.js";
import { JsonScanner } from "./json-scan.js";
import { type BodyFormat, parseBody } from "./parse-body.js";
import { configuredSpendLogParser, SPEND_LOG_FIELDS, type SpendLogParse } from "./spend-log.js";

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
  /** reads a body's bytes, building only the fields `parse` looks at */
  readonly scanner: JsonScanner;
  /** most entries in one body (server.max_entries) */
  readonly maxEntries: number;
  /** most submissions per queued part (ingest.max_chunk) */
  readonly maxChunk: number;
}

export function batchContext(config: RelayerConfig): BatchContext {
  return {
    builder: SubmissionBuilder.fromConfig(config),
    parse: configuredSpendLogParser(config),
    scanner: new JsonScanner(SPEND_LOG_FIELDS, { nonFinite: true }),
    maxEntries: config.server.maxEntries,
    maxChunk: config.ingest.maxChunk,
  };
}

/** `body` is the POST body's bytes. */
export function parseBatch(body: Buffer, receivedAt: number, context: BatchContext): ParsedBatch {
  const parsed = parseBody(body, context.scanner);
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
 * Joins a body's chunks into one byte array, in storage kept from one body to the next: a 3 MB allocation per POST
 * costs page faults and pushes the garbage collector (external memory). The array returned is valid until the next
 * `join`; nothing read from it keeps a reference to it (the readers copy what they build).
 */
export class BodyJoiner {
  /** bodies larger than this get storage of their own, so one huge POST does not pin its size */
  static readonly KEEP_BYTES = 16 * 1024 * 1024;
  private storage = Buffer.alloc(0);

  join(chunks: readonly Uint8Array[]): Buffer {
    if (chunks.length === 1) return Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength);
    let length = 0;
    for (const chunk of chunks) length += chunk.byteLength;
    let target = this.storage;
    if (length > target.length) {
      target = Buffer.allocUnsafe(length);
      if (length <= BodyJoiner.KEEP_BYTES) this.storage = target;
    }
    let offset = 0;
    for (const chunk of chunks) {
      target.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return target.subarray(0, length);
  }
}

function keyOf(value: unknown): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const record = value as Record<string, unknown>;
  const key = record["litellm_call_id"] ?? record["id"];
  return typeof key === "string" && key !== "" && key.length <= 256 ? key : undefined;
}
