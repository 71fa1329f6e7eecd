/**
 * Splits a POST body from LiteLLM's generic API logger into entries, whatever its `log_format`:
 * - json_array (default): `[{...}, null, {...}]`
 * - single: `{...}`
 * - ndjson: one JSON object per line. A line that is not JSON becomes an invalid entry; it does not poison
 *   the other lines.
 * LiteLLM sends all three with `Content-Type: application/json`, so the format is read from the body itself.
 *
 * Two readers, one result. Given a `JsonScanner`, the body's bytes are read by it: every byte is checked against
 * the JSON grammar but only the picked fields of each entry are built (a 3 MB body of 512 logs becomes 512 small
 * objects instead of a tree of a hundred thousand). The text reader (`JSON.parse`) builds whole entries; it also
 * reads what the scanner leaves to it: bodies with non-ASCII bytes at either end (Unicode whitespace, a BOM), and
 * the error messages of texts that are not JSON. Both accept the same bodies and give the same entries, as far as
 * the picked fields go.
 */
import { isAscii } from "node:buffer";

import { fieldPathAt, type JsonScanner, type NonFiniteHit } from "./json-scan.js";

export type BodyFormat = "json_array" | "single" | "ndjson";

export type BodyEntry = { readonly index: number; readonly value: unknown } | { readonly index: number; readonly error: string };

export type ParsedBody =
  | { readonly ok: true; readonly format: BodyFormat; readonly entries: readonly BodyEntry[] }
  | { readonly ok: false; readonly reason: string };

const EMPTY = "the body is empty; expected LiteLLM logs as a JSON array, one JSON object, or NDJSON";

/** The body as bytes (read with `scanner` when given) or as text. */
export function parseBody(bytes: Buffer | string, scanner?: JsonScanner): ParsedBody {
  if (typeof bytes === "string") return parseText(bytes, scanner);
  if (scanner === undefined) return parseText(decode(bytes));
  // Trim what String.prototype.trim trims among ASCII bytes; a non-ASCII end goes to the text reader.
  let start = 0;
  let end = bytes.length;
  while (start < end && isTrimmed(bytes[start]!)) start++;
  while (end > start && isTrimmed(bytes[end - 1]!)) end--;
  if (start === end) return { ok: false, reason: EMPTY };
  const first = bytes[start]!;
  if ((first !== 0x5b && first !== 0x7b) || bytes[end - 1]! >= 0x80) return parseText(decode(bytes), scanner);
  const text = bytes.subarray(start, end);
  const whole = scanner.scan(text);
  if (whole.ok) return scanned(text, whole.value, whole.nonFinite);
  // Not one JSON text: the text reader has JSON.parse's own account of where it breaks.
  if (first === 0x5b) return parseText(decode(bytes));
  const lines: Buffer[] = [];
  for (let from = 0; from <= text.length; ) {
    let to = text.indexOf(0x0a, from);
    if (to === -1) to = text.length;
    const line = text.subarray(from, to > from && text[to - 1] === 0x0d ? to - 1 : to);
    if (!isBlank(line)) lines.push(line);
    from = to + 1;
  }
  if (lines.length < 2) return parseText(decode(bytes));
  return {
    ok: true,
    format: "ndjson",
    entries: lines.map((line, index) => {
      const read = scanner.scan(line);
      if (!read.ok) return parseLine(decode(line), index);
      const hit = read.nonFinite?.[0];
      return hit === undefined ? { index, value: read.value } : { index, error: nonFiniteReason(line, hit) };
    }),
  };
}

/** Entries of a text the scanner read whole: an entry holding NaN or Infinity becomes an error, alone. */
function scanned(text: Buffer, value: unknown, nonFinite: readonly NonFiniteHit[] | undefined): ParsedBody {
  const refused = new Map<number, string>();
  for (const hit of nonFinite ?? []) if (!refused.has(hit.index)) refused.set(hit.index, nonFiniteReason(text, hit));
  const entry = (index: number, value: unknown): BodyEntry => {
    const error = refused.get(index);
    return error === undefined ? { index, value } : { index, error };
  };
  if (Array.isArray(value)) return { ok: true, format: "json_array", entries: value.map((element, index) => entry(index, element)) };
  return { ok: true, format: "single", entries: [entry(0, value)] };
}

/** Why an entry with NaN or Infinity is refused, naming the field. */
export function nonFiniteReason(text: Uint8Array, hit: NonFiniteHit): string {
  const path = fieldPathAt(text, hit.start, hit.at);
  const token = text[hit.at] === 0x4e ? "NaN" : text[hit.at] === 0x2d ? "-Infinity" : "Infinity";
  return (
    `${path === "" ? "entry" : path}: ${token} is not a JSON number (Python's json.dumps writes it for a float nan or inf); ` +
    "this entry is refused, the other entries of the body are ingested"
  );
}

/** The text reader. A text JSON.parse refuses only for NaN or Infinity goes to `scanner`, when given. */
function parseText(body: string, scanner?: JsonScanner): ParsedBody {
  const text = body.trim();
  if (text === "") return { ok: false, reason: EMPTY };
  const first = text[0];
  if (first !== "[" && first !== "{") {
    return { ok: false, reason: `the body is not JSON (it starts with ${JSON.stringify(text.slice(0, 16))}); expected a JSON array, a JSON object or NDJSON` };
  }
  let whole: unknown;
  let wholeError: string | undefined;
  try {
    whole = JSON.parse(text);
  } catch (error) {
    wholeError = (error as Error).message;
  }
  if (wholeError === undefined) {
    if (Array.isArray(whole)) return { ok: true, format: "json_array", entries: whole.map((value, index) => ({ index, value })) };
    return { ok: true, format: "single", entries: [{ index: 0, value: whole }] };
  }
  if (scanner !== undefined && /NaN|Infinity/.test(text)) {
    const bytes = Buffer.from(text, "utf8");
    const read = scanner.scan(bytes);
    if (read.ok) return scanned(bytes, read.value, read.nonFinite);
  }
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (first === "[" || lines.length < 2) return { ok: false, reason: `the body is not valid JSON: ${wholeError}` };
  return {
    ok: true,
    format: "ndjson",
    entries: lines.map((line, index) => {
      const entry = parseLine(line, index);
      if (!("error" in entry) || scanner === undefined || !/NaN|Infinity/.test(line)) return entry;
      const bytes = Buffer.from(line.trim(), "utf8");
      const read = scanner.scan(bytes);
      const hit = read.ok ? read.nonFinite?.[0] : undefined;
      return hit === undefined ? entry : { index, error: nonFiniteReason(bytes, hit) };
    }),
  };
}

function parseLine(line: string, index: number): BodyEntry {
  try {
    return { index, value: JSON.parse(line) as unknown };
  } catch (error) {
    return { index, error: `line ${index + 1} is not valid JSON: ${(error as Error).message}` };
  }
}

/** A byte String.prototype.trim removes: tab, line feed, vertical tab, form feed, carriage return, space. */
function isTrimmed(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** Whether a line is blank to String.prototype.trim (non-ASCII lines are decoded to decide). */
function isBlank(line: Buffer): boolean {
  for (const byte of line) {
    if (byte >= 0x80) return decode(line).trim() === "";
    if (!isTrimmed(byte)) return false;
  }
  return true;
}

/**
 * Bytes as text. LiteLLM's JSON encoder escapes every non-ASCII character, so bodies are ASCII: then Latin-1
 * decoding gives the same string as UTF-8, about 30x faster (no validation). Anything else is decoded as UTF-8.
 */
function decode(bytes: Buffer): string {
  return bytes.toString(isAscii(bytes) ? "latin1" : "utf8");
}
