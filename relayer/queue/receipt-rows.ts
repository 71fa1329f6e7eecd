/**
 * The form receipts wait in, in Redis: each chunk holds its receipts as rows under one header,
 *
 *   [["id","v","chain","payer",...],["chatcmpl-1",1,"arbitrum","0x..",...],...]
 *
 * The header names the fields (the Receipt schema's, `id` first); each row holds one receipt's values in that
 * order. Field names written once per chunk instead of once per receipt make a chunk 41 % smaller (529 bytes per
 * receipt instead of 901 for LiteLLM's example call), and every byte of a chunk is written to Redis by the request
 * thread, read by Redis, and read back by the batcher: for a 512-log POST that was 460 KB, about a fifth of the
 * CPU the whole ingest spent on it.
 *
 * Readers take the header's field names, not this module's list, so a chunk written by another version of the
 * relayer still reads; they also take the form chunks had before rows (an array of receipt objects).
 */
import { Receipt, type ReceiptBody } from "./receipt.js";

/** The fields of a receipt body, in the Receipt schema's order. */
export const RECEIPT_BODY_FIELDS: ReadonlyArray<keyof ReceiptBody> = Object.keys(Receipt.shape).filter(
  (field): field is keyof ReceiptBody => field !== "id",
);

/** The header row of a chunk, as JSON. */
export const RECEIPT_ROWS_HEADER = JSON.stringify(["id", ...RECEIPT_BODY_FIELDS]);

/** A body's values in RECEIPT_BODY_FIELDS order, as a JSON array (a missing value is written as null). */
export function bodyRowJson(body: ReceiptBody): string {
  const values = new Array<unknown>(RECEIPT_BODY_FIELDS.length);
  for (let i = 0; i < RECEIPT_BODY_FIELDS.length; i++) values[i] = body[RECEIPT_BODY_FIELDS[i]!];
  return JSON.stringify(values);
}

/** Receipts as rows under a header (this module's form), as one JSON text: what a chunk holds. */
export function receiptRowsJson(receipts: readonly Receipt[]): string {
  const rows = receipts.map(({ id, ...body }) => `[${JSON.stringify(id)},${bodyRowJson(body).slice(1)}`);
  return `[${[RECEIPT_ROWS_HEADER, ...rows].join(",")}]`;
}

/**
 * The receipts of a chunk's JSON, in order: rows under a header, or (written before rows) receipt objects. The
 * values are as written; the batcher checks each receipt against the Receipt schema.
 */
export function readReceiptRows(text: string): Receipt[] {
  const all = JSON.parse(text) as unknown;
  if (!Array.isArray(all)) throw new TypeError("a chunk's receipts are not a JSON array");
  const header = all[0] as unknown;
  if (!Array.isArray(header)) return all as Receipt[];
  if (!header.every((name) => typeof name === "string")) throw new TypeError("a chunk's header row is not a list of field names");
  const names = header as string[];
  const receipts = new Array<Receipt>(all.length - 1);
  for (let r = 1; r < all.length; r++) {
    const row = all[r] as unknown;
    if (!Array.isArray(row) || row.length !== names.length) throw new TypeError(`row ${r} of a chunk does not have the header's ${names.length} values`);
    const receipt: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) receipt[names[i]!] = row[i];
    receipts[r - 1] = receipt as Receipt;
  }
  return receipts;
}
