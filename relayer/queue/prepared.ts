/**
 * Submissions encoded for the submit script, ahead of time: each chain's receipts as one JSON array (bytes, ids
 * first), each unbillable record as JSON text, and per entry what the script needs. Plain data with transferable
 * byte arrays, so ingest's parse workers build it and the request thread passes it to Redis as it is.
 */
import type { ReceiptSubmission, Submission, UnbillableSubmission } from "./receipt-store.js";
import type { UnbillableReason } from "./unbillable.js";

export type PreparedEntry =
  | {
      readonly kind: "receipt";
      readonly key: string;
      readonly fingerprint: string;
      /** index into PreparedSubmissions.chains */
      readonly chain: number;
      readonly tokens: number;
    }
  | {
      readonly kind: "unbillable";
      readonly key: string;
      readonly fingerprint: string;
      readonly reason: UnbillableReason;
      /** the record as JSON without its opening "{" (the script puts the id first) */
      readonly record: string;
    };

export interface PreparedSubmissions {
  /** per chain, the JSON array of every receipt of this part, each with `"id": key` first */
  readonly chains: ReadonlyArray<{ readonly chain: string; readonly receipts: Uint8Array }>;
  /** one per submission, in order */
  readonly entries: readonly PreparedEntry[];
}

const FINGERPRINT = /^[0-9a-f]{16}$/;
// TextEncoder gives each array its own ArrayBuffer (Buffer.from would share Node's pool: not transferable).
const encoder = new TextEncoder();

function prepareOne(submissions: readonly Submission[]): PreparedSubmissions {
  const chainIndex = new Map<string, number>();
  const lines: string[][] = [];
  const names: string[] = [];
  const entries: PreparedEntry[] = submissions.map((submission) => {
    if (!FINGERPRINT.test(submission.fingerprint)) throw new TypeError(`fingerprint must be 16 hex digits: ${submission.fingerprint}`);
    if (submission.kind === "receipt") return receiptEntry(submission, chainIndex, names, lines);
    return unbillableEntry(submission);
  });
  return {
    chains: names.map((chain, index) => ({ chain, receipts: encoder.encode(`[${lines[index]!.join(",")}]`) })),
    entries,
  };
}

function receiptEntry(submission: ReceiptSubmission, chainIndex: Map<string, number>, names: string[], lines: string[][]): PreparedEntry {
  let index = chainIndex.get(submission.body.chain);
  if (index === undefined) {
    index = names.length;
    chainIndex.set(submission.body.chain, index);
    names.push(submission.body.chain);
    lines.push([]);
  }
  lines[index]!.push(`{"id":${JSON.stringify(submission.key)},${JSON.stringify(submission.body).slice(1)}`);
  return { kind: "receipt", key: submission.key, fingerprint: submission.fingerprint, chain: index, tokens: submission.body.tokens };
}

function unbillableEntry(submission: UnbillableSubmission): PreparedEntry {
  return {
    kind: "unbillable",
    key: submission.key,
    fingerprint: submission.fingerprint,
    reason: submission.body.reason,
    record: JSON.stringify(submission.body).slice(1),
  };
}

/** Encodes submissions in parts of at most `maxPart` (one atomic write, and at most one chunk per chain, each). */
export function prepareSubmissions(submissions: readonly Submission[], maxPart = 1000): PreparedSubmissions[] {
  const parts: PreparedSubmissions[] = [];
  for (let start = 0; start < submissions.length; start += maxPart) parts.push(prepareOne(submissions.slice(start, start + maxPart)));
  return parts;
}

/** The byte arrays to list when posting prepared parts to another thread. */
export function transferablesOf(parts: readonly PreparedSubmissions[]): ArrayBuffer[] {
  return parts.flatMap((part) => part.chains.map((chain) => chain.receipts.buffer as ArrayBuffer));
}
