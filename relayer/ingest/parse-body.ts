/**
 * Splits a POST body from LiteLLM's generic API logger into entries, whatever its `log_format`:
 * - json_array (default): `[{...}, null, {...}]`
 * - single: `{...}`
 * - ndjson: one JSON object per line. A line that is not JSON becomes an invalid entry; it does not poison
 *   the other lines.
 * LiteLLM sends all three with `Content-Type: application/json`, so the format is read from the body itself.
 */

export type BodyFormat = "json_array" | "single" | "ndjson";

export type BodyEntry = { readonly index: number; readonly value: unknown } | { readonly index: number; readonly error: string };

export type ParsedBody =
  | { readonly ok: true; readonly format: BodyFormat; readonly entries: readonly BodyEntry[] }
  | { readonly ok: false; readonly reason: string };

export function parseBody(body: string): ParsedBody {
  const text = body.trim();
  if (text === "") return { ok: false, reason: "the body is empty; expected LiteLLM logs as a JSON array, one JSON object, or NDJSON" };
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
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (first === "[" || lines.length < 2) return { ok: false, reason: `the body is not valid JSON: ${wholeError}` };
  return {
    ok: true,
    format: "ndjson",
    entries: lines.map((line, index) => {
      try {
        return { index, value: JSON.parse(line) as unknown };
      } catch (error) {
        return { index, error: `line ${index + 1} is not valid JSON: ${(error as Error).message}` };
      }
    }),
  };
}
