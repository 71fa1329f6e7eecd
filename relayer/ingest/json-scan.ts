/**
 * A validating JSON reader that builds only the fields it is asked for. A LiteLLM log is about 6 KB (prompts,
 * response, cost map, hidden params) of which billing reads some twenty small fields: `JSON.parse` would build
 * every object and string of the 3 MB body of a 512-log POST, then the garbage collector would free them. This
 * reader walks the bytes once, checks the whole text against the JSON grammar (RFC 8259, the same grammar as
 * `JSON.parse`), and materializes the picked fields only; everything else is checked and skipped.
 *
 * Equivalence with JSON.parse, which the tests check on generated and mutated documents:
 * - a text is accepted exactly when JSON.parse accepts it (after UTF-8 decoding, bytes >= 0x80 are string
 *   content, never structure);
 * - a picked value is the value JSON.parse gives (small picked values are parsed by JSON.parse itself);
 * - a repeated key keeps its last value, as JSON.parse does.
 * Skipping is iterative (an explicit stack), so a deeply nested document cannot overflow the call stack.
 */

/** The fields to build of an object: a name maps to `true` (its whole value) or to the pick of an object value. */
export type FieldPick = { readonly [name: string]: true | FieldPick };

/** Thrown inside the reader at the first byte that breaks the grammar; caught by `JsonScanner.scan`. */
class NotJson {
  constructor(readonly at: number) {}
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const IN_OBJECT = 1;
const IN_ARRAY = 2;

function isHex(byte: number): boolean {
  return (byte >= ZERO && byte <= NINE) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/** A field name as bytes, with what to do with its value. */
interface PickedName {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly then: true | CompiledPick;
}

/** A FieldPick indexed by name length, so most keys are passed over after one array read. */
class CompiledPick {
  private readonly byLength: Array<PickedName[] | undefined> = [];
  private readonly byName = new Map<string, PickedName>();

  constructor(pick: FieldPick) {
    for (const [name, then] of Object.entries(pick)) {
      const bytes = Buffer.from(name, "utf8");
      const entry: PickedName = { name, bytes, then: then === true ? true : new CompiledPick(then) };
      (this.byLength[bytes.length] ??= []).push(entry);
      this.byName.set(name, entry);
    }
  }

  /** The picked name whose bytes are bytes[start, end) (a key without escapes). */
  matchBytes(bytes: Uint8Array, start: number, end: number): PickedName | undefined {
    const candidates = this.byLength[end - start];
    if (candidates === undefined) return undefined;
    for (const candidate of candidates) {
      const name = candidate.bytes;
      let i = 0;
      while (i < name.length && name[i] === bytes[start + i]) i++;
      if (i === name.length) return candidate;
    }
    return undefined;
  }

  matchName(name: string): PickedName | undefined {
    return this.byName.get(name);
  }
}

/** A NaN, Infinity or -Infinity found in a text read with `nonFinite: true`. */
export interface NonFiniteHit {
  /** the top-level array element it is in (0 for any other text) */
  readonly index: number;
  /** byte offset where that element starts */
  readonly start: number;
  /** byte offset of the token */
  readonly at: number;
}

export type ScanResult =
  | { readonly ok: true; readonly value: unknown; readonly nonFinite?: readonly NonFiniteHit[] }
  | { readonly ok: false; readonly at: number };

export interface JsonScannerOptions {
  /**
   * Read NaN, Infinity and -Infinity as values (built as null) and report where they are, so that the caller can
   * refuse just the entry that holds one. Default false: exactly JSON.parse's grammar.
   */
  readonly nonFinite?: boolean;
}

/** 1 for a byte that may stand for itself inside a JSON string (not a quote, a backslash or a control byte) */
const PLAIN = new Uint8Array(256);
for (let byte = 0x20; byte < 0x100; byte++) PLAIN[byte] = 1;
PLAIN[QUOTE] = 0;
PLAIN[BACKSLASH] = 0;

/**
 * The buffer being read, as a DataView, so that plain string content (most of a LiteLLM body) is passed over four
 * bytes at a time. Set by `JsonScanner.scan` for its buffer (`wordsOf`), and dropped after it so as not to keep the
 * body alive; other byte arrays (fieldPathAt's) are read byte by byte. A DataView reads a word at any offset, so a
 * Buffer from Node's pool, which starts anywhere in its ArrayBuffer, needs no byte-by-byte lead-in to an aligned word
 * (an Int32Array would), and it reads little-endian on any machine: the first byte is the low one, which `plainEnd`
 * relies on.
 */
const NO_WORDS = new DataView(new ArrayBuffer(0));
let words: DataView<ArrayBufferLike> = NO_WORDS;
let wordsOf: Uint8Array | undefined;

/**
 * First index at or after `pos` whose byte is not plain string content (a quote, a backslash or a control byte), or
 * `length` when there is none.
 *
 * A word at a time: with no borrow coming in from below, b - 0x20 wraps around and sets bit 7 of a byte b below 0x20,
 * and b - 1 does the same for a zero byte of word ^ 0x22222222 (a quote) or of word ^ 0x5c5c5c5c (a backslash); they
 * set bit 7 otherwise only for a byte >= 0x80 (bit 7 of b ^ 0x22 and of b ^ 0x5c is that of b), which `& ~word` drops
 * (`|` takes the differences mod 2^32, as a 32-bit subtraction would). Only a byte that wraps lends a borrow to the
 * byte above it, so the bytes below the first stop byte stay clear and that byte is marked: `stops` is 0 exactly when
 * all four bytes are plain, and its lowest mark is the first stop byte (a mark above it may be false, and is not read).
 */
function plainEnd(bytes: Uint8Array, pos: number): number {
  const length = bytes.length;
  if (bytes === wordsOf) {
    const view = words;
    while (pos + 4 <= length) {
      const word = view.getInt32(pos, true);
      const stops = (((word ^ 0x22222222) - 0x01010101) | ((word ^ 0x5c5c5c5c) - 0x01010101) | (word - 0x20202020)) & ~word & 0x80808080;
      if (stops !== 0) return pos + ((31 - Math.clz32(stops & -stops)) >> 3);
      pos += 4;
    }
  }
  while (pos < length && PLAIN[bytes[pos]!] === 1) pos++;
  return pos;
}

/** 1 for a JSON whitespace byte */
const SPACE = new Uint8Array(256);
for (const byte of [0x20, 0x09, 0x0a, 0x0d]) SPACE[byte] = 1;

/** 1 for a digit */
const DIGIT = new Uint8Array(256);
for (let byte = ZERO; byte <= NINE; byte++) DIGIT[byte] = 1;

/** 1 for a byte allowed after a backslash (besides u) */
const ESCAPE = new Uint8Array(256);
for (const byte of [QUOTE, BACKSLASH, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]) ESCAPE[byte] = 1;

/** The byte at `pos`, or -1 past the end (a typed array read past its end would slow the whole reader down). */
function at(bytes: Uint8Array, pos: number): number {
  return pos < bytes.length ? bytes[pos]! : -1;
}

/** First index at or after `pos` that is not JSON whitespace. */
function skipSpace(bytes: Uint8Array, pos: number): number {
  const length = bytes.length;
  while (pos < length && SPACE[bytes[pos]!] === 1) pos++;
  return pos;
}

/**
 * The index after the string that opens at `pos` (a quote), or the negated index after it when the string
 * holds an escape. Throws NotJson where the string breaks the grammar or the text ends inside it.
 */
function skipString(bytes: Uint8Array, pos: number): number {
  const length = bytes.length;
  if (pos >= length || bytes[pos] !== QUOTE) throw new NotJson(pos);
  pos++;
  let escaped = false;
  for (;;) {
    pos = plainEnd(bytes, pos);
    if (pos >= length) throw new NotJson(pos);
    const byte = bytes[pos];
    if (byte === QUOTE) return escaped ? -(pos + 1) : pos + 1;
    if (byte !== BACKSLASH) throw new NotJson(pos); // a control byte, or the end of the text
    escaped = true;
    if (pos + 1 >= length) throw new NotJson(pos + 1);
    const kind = bytes[pos + 1]!;
    if (ESCAPE[kind] === 1) pos += 2;
    else if (kind === 0x75 && pos + 5 < length && isHex(bytes[pos + 2]!) && isHex(bytes[pos + 3]!) && isHex(bytes[pos + 4]!) && isHex(bytes[pos + 5]!)) pos += 6;
    else throw new NotJson(pos + 1);
  }
}

/** The index after the number at `pos`: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
function skipNumber(bytes: Uint8Array, pos: number): number {
  const length = bytes.length;
  if (pos < length && bytes[pos] === MINUS) pos++;
  if (pos >= length) throw new NotJson(pos);
  if (bytes[pos] === ZERO) pos++; // pos < length here
  else if (DIGIT[bytes[pos]!] === 1) while (pos < length && DIGIT[bytes[pos]!] === 1) pos++;
  else {
    const end = bytes[pos - 1] === MINUS ? nonFiniteEnd(bytes, pos - 1) : -1;
    if (end === -1) throw new NotJson(pos);
    return end;
  }
  if (pos < length && bytes[pos] === DOT) {
    pos++;
    if (pos >= length || DIGIT[bytes[pos]!] !== 1) throw new NotJson(pos);
    while (pos < length && DIGIT[bytes[pos]!] === 1) pos++;
  }
  const e = pos < length ? bytes[pos] : -1;
  if (e === 0x65 || e === 0x45) {
    pos++;
    if (pos < length && (bytes[pos] === PLUS || bytes[pos] === MINUS)) pos++;
    if (pos >= length || DIGIT[bytes[pos]!] !== 1) throw new NotJson(pos);
    while (pos < length && DIGIT[bytes[pos]!] === 1) pos++;
  }
  return pos;
}

/** The index after the literal true, false or null at `pos`. */
function skipLiteral(bytes: Uint8Array, pos: number): number {
  if (pos + 4 > bytes.length) {
    const end = nonFiniteEnd(bytes, pos);
    if (end === -1) throw new NotJson(pos);
    return end;
  }
  const first = bytes[pos];
  if (first === 0x6e && bytes[pos + 1] === 0x75 && bytes[pos + 2] === 0x6c && bytes[pos + 3] === 0x6c) return pos + 4; // null
  if (first === 0x74 && bytes[pos + 1] === 0x72 && bytes[pos + 2] === 0x75 && bytes[pos + 3] === 0x65) return pos + 4; // true
  if (first === 0x66 && pos + 5 <= bytes.length && bytes[pos + 1] === 0x61 && bytes[pos + 2] === 0x6c && bytes[pos + 3] === 0x73 && bytes[pos + 4] === 0x65) return pos + 5; // false
  const end = nonFiniteEnd(bytes, pos);
  if (end === -1) throw new NotJson(pos);
  return end;
}

/** The index after the string at `pos`, most often one without escapes, which plainEnd alone reads to its end. */
function skipPlainString(bytes: Uint8Array, pos: number): number {
  const length = bytes.length;
  let end = plainEnd(bytes, pos + 1);
  if (end < length && bytes[end] === QUOTE) return end + 1;
  end = skipString(bytes, pos);
  return end < 0 ? -end : end;
}

/** The index after `"key" :` at `pos` (the key must be a string). */
function skipMember(bytes: Uint8Array, pos: number): number {
  pos = skipSpace(bytes, pos);
  if (at(bytes, pos) !== QUOTE) throw new NotJson(pos);
  pos = skipSpace(bytes, skipPlainString(bytes, pos));
  if (at(bytes, pos) !== COLON) throw new NotJson(pos);
  return pos + 1;
}

/**
 * Whether NaN, Infinity and -Infinity are read as values (Python's json.dumps writes them; JSON has no such
 * tokens), and where they were found: set by `JsonScanner.scan` for the text it reads.
 */
let nonFiniteAllowed = false;
let nonFiniteAt: number[] = [];

/** The index after NaN, Infinity or -Infinity at `pos` (recorded), or -1 when there is none there. */
function nonFiniteEnd(bytes: Uint8Array, pos: number): number {
  if (!nonFiniteAllowed) return -1;
  const from = bytes[pos] === MINUS ? pos + 1 : pos;
  const word = from === pos && bytes[pos] === 0x4e ? "NaN" : "Infinity";
  if (from + word.length > bytes.length) return -1;
  for (let i = 0; i < word.length; i++) if (bytes[from + i] !== word.charCodeAt(i)) return -1;
  nonFiniteAt.push(pos);
  return from + word.length;
}

/** Container kinds on the skip stack. */
let stack = new Uint8Array(64);

/** Checks the value at `pos` (after optional whitespace) against the grammar and returns the index after it. */
function skipValue(bytes: Uint8Array, pos: number): number {
  let depth = 0;
  for (;;) {
    // a value
    pos = skipSpace(bytes, pos);
    const first = at(bytes, pos);
    if (first === QUOTE) {
      pos = skipPlainString(bytes, pos);
    } else if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
      const close = first === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      pos = skipSpace(bytes, pos + 1);
      if (at(bytes, pos) === close) {
        pos++;
      } else {
        if (depth === stack.length) {
          const grown = new Uint8Array(stack.length * 2);
          grown.set(stack);
          stack = grown;
        }
        stack[depth++] = first === OPEN_OBJECT ? IN_OBJECT : IN_ARRAY;
        if (first === OPEN_OBJECT) pos = skipMember(bytes, pos);
        continue;
      }
    } else if (first === MINUS || DIGIT[first!] === 1) {
      pos = skipNumber(bytes, pos);
    } else {
      pos = skipLiteral(bytes, pos);
    }
    // after a value: close containers, or go on to the next element
    for (;;) {
      if (depth === 0) return pos;
      pos = skipSpace(bytes, pos);
      const next = at(bytes, pos);
      const inside = stack[depth - 1];
      if (next === COMMA) {
        pos = inside === IN_OBJECT ? skipMember(bytes, pos + 1) : pos + 1;
        break;
      }
      if ((next === CLOSE_OBJECT && inside === IN_OBJECT) || (next === CLOSE_ARRAY && inside === IN_ARRAY)) {
        pos++;
        depth--;
        continue;
      }
      throw new NotJson(pos);
    }
  }
}

/**
 * Reads JSON texts from bytes, building for every object at the top level (or in a top-level array) only the
 * fields of `pick`. Other values at those levels (null, arrays in arrays, numbers...) are built whole.
 */
export class JsonScanner {
  private readonly pick: CompiledPick;

  private readonly nonFinite: boolean;

  constructor(pick: FieldPick, options: JsonScannerOptions = {}) {
    this.pick = new CompiledPick(pick);
    this.nonFinite = options.nonFinite === true;
  }

  /**
   * `buffer` as one JSON text (whitespace around it allowed). A top-level array is read element by element, each
   * element with the pick; any other top-level value is read with the pick itself.
   */
  scan(buffer: Buffer): ScanResult {
    nonFiniteAllowed = this.nonFinite;
    nonFiniteAt = [];
    words = new DataView(buffer.buffer, buffer.byteOffset, buffer.length);
    wordsOf = buffer;
    const hits: NonFiniteHit[] = [];
    const collect = (index: number, start: number) => {
      if (nonFiniteAt.length === 0) return;
      for (const offset of nonFiniteAt) hits.push({ index, start, at: offset });
      nonFiniteAt = [];
    };
    try {
      let pos = skipSpace(buffer, 0);
      let value: unknown;
      if (at(buffer, pos) === OPEN_ARRAY) {
        const out: unknown[] = [];
        pos = skipSpace(buffer, pos + 1);
        if (at(buffer, pos) === CLOSE_ARRAY) pos++;
        else {
          for (;;) {
            const start = skipSpace(buffer, pos);
            const read = picked(buffer, start, this.pick);
            collect(out.length, start);
            out.push(read.value);
            pos = skipSpace(buffer, read.end);
            const next = at(buffer, pos++);
            if (next === COMMA) continue;
            if (next === CLOSE_ARRAY) break;
            throw new NotJson(pos - 1);
          }
        }
        value = out;
      } else {
        const read = picked(buffer, pos, this.pick);
        collect(0, pos);
        value = read.value;
        pos = read.end;
      }
      pos = skipSpace(buffer, pos);
      if (pos !== buffer.length) throw new NotJson(pos);
      return hits.length === 0 ? { ok: true, value } : { ok: true, value, nonFinite: hits };
    } catch (error) {
      if (error instanceof NotJson) return { ok: false, at: error.at };
      throw error;
    } finally {
      nonFiniteAllowed = false;
      nonFiniteAt = [];
      words = NO_WORDS;
      wordsOf = undefined;
    }
  }
}

interface Read {
  readonly value: unknown;
  /** index after the value */
  readonly end: number;
}

/** The value at `pos`: an object is built with `pick`, anything else whole. */
function picked(bytes: Buffer, pos: number, pick: CompiledPick): Read {
  if (at(bytes, pos) !== OPEN_OBJECT) return whole(bytes, pos);
  const out: Record<string, unknown> = {};
  pos = skipSpace(bytes, pos + 1);
  if (at(bytes, pos) === CLOSE_OBJECT) return { value: out, end: pos + 1 };
  for (;;) {
    const keyStart = skipSpace(bytes, pos);
    let keyEnd = skipString(bytes, keyStart);
    let field: PickedName | undefined;
    if (keyEnd < 0) {
      keyEnd = -keyEnd;
      field = pick.matchName(JSON.parse(bytes.toString("utf8", keyStart, keyEnd)) as string);
    } else {
      field = pick.matchBytes(bytes, keyStart + 1, keyEnd - 1);
    }
    pos = skipSpace(bytes, keyEnd);
    if (at(bytes, pos) !== COLON) throw new NotJson(pos);
    pos = skipSpace(bytes, pos + 1);
    if (field === undefined) {
      pos = skipValue(bytes, pos);
    } else {
      const read = field.then === true ? whole(bytes, pos) : picked(bytes, pos, field.then);
      out[field.name] = read.value;
      pos = read.end;
    }
    pos = skipSpace(bytes, pos);
    const next = at(bytes, pos);
    if (next === COMMA) {
      pos++;
      continue;
    }
    if (next === CLOSE_OBJECT) return { value: out, end: pos + 1 };
    throw new NotJson(pos);
  }
}

/** 10 ** 0 to 10 ** 22, the powers of ten that a double holds exactly (read from text, which is exact: `**` may be off). */
const EXACT_POWERS = new Float64Array(23);
for (let power = 0; power < 23; power++) EXACT_POWERS[power] = Number(`1e${power}`);

/**
 * The number whose text, already checked, is bytes[pos, end), as Number(text) gives it. Making the text a string for
 * Number took some 0.1 µs a number, a tenth of the scan of a 512-log body, and a LiteLLM log's numbers (token counts,
 * costs, times such as 1796369007.679000) are integers below 2^53 times 10^k with |k| <= 22: both factors are exact
 * doubles, so one multiplication or division, rounded once, gives the correctly rounded value, which Number gives too
 * (Clinger's fast path). Other numbers are left to Number.
 */
function numberAt(bytes: Buffer, pos: number, end: number): number {
  let i = pos;
  const negative = bytes[i] === MINUS;
  if (negative) i++;
  // past 2^53 the mantissa may be inexact, but it never falls back below 2^53, so the check below sees it
  let mantissa = 0;
  while (i < end && DIGIT[bytes[i]!] === 1) mantissa = mantissa * 10 + (bytes[i++]! - ZERO);
  let scale = 0;
  if (i < end && bytes[i] === DOT) {
    i++;
    while (i < end && DIGIT[bytes[i]!] === 1) {
      mantissa = mantissa * 10 + (bytes[i++]! - ZERO);
      scale--;
    }
  }
  if (i < end && (bytes[i] === 0x65 || bytes[i] === 0x45)) {
    i++;
    const sign = bytes[i] === MINUS ? -1 : 1;
    if (bytes[i] === MINUS || bytes[i] === PLUS) i++;
    let exponent = 0;
    while (i < end && DIGIT[bytes[i]!] === 1) exponent = exponent * 10 + (bytes[i++]! - ZERO);
    scale += sign * exponent;
  }
  if (i !== end || mantissa > Number.MAX_SAFE_INTEGER || scale < -22 || scale > 22) return Number(bytes.toString("latin1", pos, end));
  const value = scale < 0 ? mantissa / EXACT_POWERS[-scale]! : mantissa * EXACT_POWERS[scale]!;
  return negative ? -value : value;
}

/** The value at `pos`, built whole (by JSON.parse but for plain strings, numbers and literals). */
function whole(bytes: Buffer, pos: number): Read {
  const first = at(bytes, pos);
  if (first === QUOTE) {
    const end = skipString(bytes, pos);
    if (end > 0) return { value: bytes.toString("utf8", pos + 1, end - 1), end };
    return { value: JSON.parse(bytes.toString("utf8", pos, -end)), end: -end };
  }
  const hitsBefore = nonFiniteAt.length;
  const end = skipValue(bytes, pos);
  // NaN, Infinity and -Infinity (read only with nonFinite) are built as null, all three alike
  if (first === MINUS && bytes[pos + 1] === 0x49) return { value: null, end };
  if (first === MINUS || DIGIT[first!] === 1) return { value: numberAt(bytes, pos, end), end };
  if (first === 0x4e || first === 0x49) return { value: null, end };
  if (first === 0x6e) return { value: null, end };
  if (first === 0x74) return { value: true, end };
  if (first === 0x66) return { value: false, end };
  // an object or array: JSON.parse builds it, with any NaN, Infinity or -Infinity inside made null first
  const text = nonFiniteAt.length === hitsBefore ? bytes.toString("utf8", pos, end) : withNulls(bytes, pos, end, nonFiniteAt.slice(hitsBefore));
  return { value: JSON.parse(text), end };
}

/** bytes[pos, end) as text, with the NaN, Infinity and -Infinity tokens at offsets `hits` (in order) written as null. */
function withNulls(bytes: Buffer, pos: number, end: number, hits: readonly number[]): string {
  let text = "";
  for (const hit of hits) {
    text += `${bytes.toString("utf8", pos, hit)}null`;
    pos = hit + (bytes[hit] === MINUS ? 9 : bytes[hit] === 0x4e ? 3 : 8);
  }
  return text + bytes.toString("utf8", pos, end);
}

/**
 * The field path ("metadata.usage_object.total_tokens", "response.choices[0].logprobs") of the value at byte `target`
 * inside the JSON value that starts at `start`; "" when `target` is that value itself. For reporting only: the text
 * must already have been read by the scanner (it is not checked again).
 */
export function fieldPathAt(bytes: Uint8Array, start: number, target: number): string {
  const path: Array<string | number> = [];
  const inObject: boolean[] = [];
  let expectKey = false;
  let pos = start;
  while (pos < target && pos < bytes.length) {
    const byte = bytes[pos]!;
    if (byte === QUOTE) {
      let end = skipString(bytes, pos);
      end = end < 0 ? -end : end;
      if (expectKey && inObject[inObject.length - 1] === true) {
        path[path.length - 1] = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString("utf8")) as string;
        expectKey = false;
      }
      pos = end;
      continue;
    }
    if (byte === OPEN_OBJECT) {
      inObject.push(true);
      path.push("");
      expectKey = true;
    } else if (byte === OPEN_ARRAY) {
      inObject.push(false);
      path.push(0);
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      inObject.pop();
      path.pop();
    } else if (byte === COMMA) {
      if (inObject[inObject.length - 1] === true) expectKey = true;
      else path[path.length - 1] = (path[path.length - 1] as number) + 1;
    }
    pos++;
  }
  return path.reduce<string>((text, part) => (typeof part === "number" ? `${text}[${part}]` : text === "" ? part : `${text}.${part}`), "");
}
