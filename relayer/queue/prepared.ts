/**
 * Submissions encoded for the submit script, ahead of time: each chain's receipts as one JSON array of rows under
 * a header (see receipt-rows.ts), and every entry packed into one byte string (see `packEntry`). Plain data with transferable byte arrays, so
 * ingest's parse workers build it and the request thread hands the bytes to Redis as they are: a 512-log POST is
 * one command of a dozen arguments, not of 3,600 (ioredis encoded those one by one on the request thread, and
 * Redis parsed them one by one).
 */
import type { ReceiptSubmission, Submission } from "./receipt-store.js";
import { bodyRowJson, RECEIPT_ROWS_HEADER } from "./receipt-rows.js";
import { UNBILLABLE_REASONS, type UnbillableReason } from "./unbillable.js";

export type PreparedEntry =
  | {
      readonly kind: "receipt";
      readonly key: string;
      readonly fingerprint: string;
      readonly startTime?: number | undefined;
      /** index into PreparedSubmissions.chains */
      readonly chain: number;
      readonly tokens: number;
    }
  | {
      readonly kind: "unbillable";
      readonly key: string;
      readonly fingerprint: string;
      readonly startTime?: number | undefined;
      readonly reason: UnbillableReason;
    };

export interface PreparedSubmissions {
  /** per chain, every receipt of this part as rows under a header, id = key (UTF-8 JSON, see receipt-rows.ts) */
  readonly chains: ReadonlyArray<{ readonly chain: string; readonly receipts: Uint8Array }>;
  /** one per submission, in order */
  readonly entries: readonly PreparedEntry[];
  /** the entries as the submit script reads them (see packEntry) */
  readonly packed: Uint8Array;
}

const FINGERPRINT = /^[0-9a-f]{16}$/;
/** group number of each unbillable reason in the submit script: its place in UNBILLABLE_REASONS, from 1 */
const REASON_GROUP = new Map<UnbillableReason, number>(UNBILLABLE_REASONS.map((reason, index) => [reason, index + 1]));

function prepareOne(submissions: readonly Submission[]): PreparedSubmissions {
  const chainIndex = new Map<string, number>();
  const lines: string[][] = [];
  const names: string[] = [];
  const packed: string[] = [];
  const entries: PreparedEntry[] = submissions.map((submission) => {
    if (!FINGERPRINT.test(submission.fingerprint)) throw new TypeError(`fingerprint must be 16 hex digits: ${submission.fingerprint}`);
    if (submission.kind === "receipt") {
      const entry = receiptEntry(submission, chainIndex, names, lines);
      packed.push(packEntry("q", entry.chain + 1, submission.key, submission.fingerprint, submission.startTime, ""));
      return entry;
    }
    // the record as JSON without its opening "{" (the script puts the id first)
    packed.push(
      packEntry("u", REASON_GROUP.get(submission.body.reason)!, submission.key, submission.fingerprint, submission.startTime, JSON.stringify(submission.body).slice(1)),
    );
    return { kind: "unbillable", key: submission.key, fingerprint: submission.fingerprint, startTime: submission.startTime, reason: submission.body.reason };
  });
  return {
    chains: names.map((chain, index) => ({ chain, receipts: receiptsArray(lines[index]!) })),
    entries,
    packed: ownUtf8(packed.join("")),
  };
}

/**
 * A chain's receipts as rows under a header, `[<header>,[<key>,<body values>],...]` (receipt-rows.ts), in UTF-8,
 * written straight into an ArrayBuffer of its own (transferable: Buffer.from would share Node's pool). `texts`
 * holds each receipt's key and body row as JSON, in turn. Each text is flat as JSON.stringify made it and written
 * once: building each receipt's text by concatenation, joining the 512 of a POST and encoding the result with
 * TextEncoder cost ten times more, a third of the parsing of a 512-log POST.
 */
function receiptsArray(texts: readonly string[]): Uint8Array {
  const count = texts.length / 2;
  // "[", the header, "]"; per receipt a comma and "[" before its key; the body row's "[" becomes the comma after the key
  let length = 2 + RECEIPT_ROWS_HEADER.length + 2 * count;
  for (const text of texts) length += Buffer.byteLength(text, "utf8");
  const bytes = Buffer.allocUnsafeSlow(length);
  bytes[0] = 0x5b; // [
  let at = 1 + bytes.write(RECEIPT_ROWS_HEADER, 1, "latin1");
  for (let i = 0; i < texts.length; i += 2) {
    bytes[at++] = 0x2c; // ,
    bytes[at++] = 0x5b; // [
    at += bytes.write(texts[i]!, at, "utf8");
    const row = at;
    at += bytes.write(texts[i + 1]!, at, "utf8");
    bytes[row] = 0x2c; // the row's own "["
  }
  bytes[at++] = 0x5d; // ]
  if (at !== length) throw new Error(`receipts array: wrote ${at} bytes of ${length}`);
  return bytes;
}

/** `text` in UTF-8, in an ArrayBuffer of its own. */
function ownUtf8(text: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text, "utf8"));
  bytes.write(text, 0, "utf8");
  return bytes;
}

/**
 * One entry for the submit script: `<kind><group>,<key bytes>,<body bytes>,<start ms>,<fingerprint><key><body>`, where
 * kind is q (receipt; group = chain number, body empty) or u (unbillable; group = reason number, body = the record's
 * JSON without its "{"), lengths are decimal byte counts of the UTF-8 text, start ms is the call's start time (empty
 * when unknown) and the fingerprint is 16 hex digits.
 */
function packEntry(kind: "q" | "u", group: number, key: string, fingerprint: string, startTime: number | undefined, body: string): string {
  if (startTime !== undefined && !Number.isSafeInteger(startTime)) throw new TypeError(`startTime must be whole milliseconds: ${startTime}`);
  return `${kind}${group},${Buffer.byteLength(key)},${Buffer.byteLength(body)},${startTime ?? ""},${fingerprint}${key}${body}`;
}

function receiptEntry(
  submission: ReceiptSubmission,
  chainIndex: Map<string, number>,
  names: string[],
  lines: string[][],
): Extract<PreparedEntry, { kind: "receipt" }> {
  let index = chainIndex.get(submission.body.chain);
  if (index === undefined) {
    index = names.length;
    chainIndex.set(submission.body.chain, index);
    names.push(submission.body.chain);
    lines.push([]);
  }
  lines[index]!.push(JSON.stringify(submission.key), bodyRowJson(submission.body));
  return { kind: "receipt", key: submission.key, fingerprint: submission.fingerprint, startTime: submission.startTime, chain: index, tokens: submission.body.tokens };
}

/** Encodes submissions in parts of at most `maxPart` (one atomic write, and at most one chunk per chain, each). */
export function prepareSubmissions(submissions: readonly Submission[], maxPart = 1000): PreparedSubmissions[] {
  const parts: PreparedSubmissions[] = [];
  for (let start = 0; start < submissions.length; start += maxPart) parts.push(prepareOne(submissions.slice(start, start + maxPart)));
  return parts;
}

/** The byte arrays to list when posting prepared parts to another thread. */
export function transferablesOf(parts: readonly PreparedSubmissions[]): ArrayBuffer[] {
  return parts.flatMap((part) => [...part.chains.map((chain) => chain.receipts.buffer as ArrayBuffer), part.packed.buffer as ArrayBuffer]);
}
