import { readFileSync } from "node:fs";

import { expect } from "chai";

import { prng } from "../../../relayer/demo/prng.js";
import { BodyJoiner, type FieldPick, JsonScanner, parseBody, SPEND_LOG_FIELDS } from "../../../relayer/ingest/index.js";

const FIXTURES = new URL("../../../fixtures/litellm/", import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), "utf8");

/** What the scanner should give: JSON.parse's value with every object at the picked levels reduced to the pick. */
function reduce(value: unknown, pick: FieldPick): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [name, inner] of Object.entries(value as Record<string, unknown>)) {
    const then = Object.hasOwn(pick, name) ? pick[name] : undefined;
    if (then === undefined) continue;
    out[name] = then === true ? inner : reduce(inner, then);
  }
  return out;
}

function expected(text: string, pick: FieldPick): { ok: true; value: unknown } | { ok: false } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false };
  }
  return { ok: true, value: Array.isArray(value) ? value.map((element) => reduce(element, pick)) : reduce(value, pick) };
}

/** `text` is sent as UTF-8 (a lone surrogate becomes U+FFFD): JSON.parse is given the text those bytes decode to */
function scanned(scanner: JsonScanner, text: string): { ok: true; value: unknown } | { ok: false } {
  const result = scanner.scan(Buffer.from(text, "utf8"));
  return result.ok ? { ok: true, value: result.value } : { ok: false };
}

/** A random JSON value, its text written with random whitespace, escapes and number forms. */
class Generator {
  constructor(private readonly random: () => number) {}

  private int(below: number): number {
    return Math.floor(this.random() * below);
  }

  private pickOne<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  space(): string {
    return this.int(4) === 0 ? this.pickOne([" ", "\n", "\t", "\r\n", "  "]) : "";
  }

  string(): string {
    const parts: string[] = ['"'];
    const length = this.int(8);
    for (let i = 0; i < length; i++) {
      parts.push(
        this.pickOne([
          "a",
          "id",
          "model",
          " ",
          "\\n",
          '\\"',
          "\\\\",
          "\\/",
          "\\u0041",
          "\\ud83d\\ude00",
          "\\udc00",
          "é",
          "😀",
          "\\b\\f\\r\\t",
          "{",
          "}",
          "[",
          ",",
          ":",
        ]),
      );
    }
    parts.push('"');
    return parts.join("");
  }

  key(): string {
    // picked names (plain and escaped), near misses and others
    return this.pickOne(['"id"', '"i\\u0064"', '"model"', '"metadata"', '"user_api_key_alias"', '"ids"', '"i"', '"Model"', '"messages"', '""', this.string()]);
  }

  number(): string {
    return this.pickOne(["0", "-0", "7", "-12", "3.25", "1e3", "1E-2", "2.5e+10", "123456789012345678901234", "1e400", "0.1", "-0.0"]);
  }

  value(depth = 0): string {
    const kind = this.int(depth > 3 ? 4 : 6);
    switch (kind) {
      case 0:
        return this.string();
      case 1:
        return this.number();
      case 2:
        return this.pickOne(["true", "false", "null"]);
      case 3:
        return this.pickOne(['"x"', "1", "null"]);
      case 4: {
        const n = this.int(4);
        return `[${this.space()}${Array.from({ length: n }, () => `${this.space()}${this.value(depth + 1)}${this.space()}`).join(",")}]`;
      }
      default: {
        const n = this.int(5);
        return `{${this.space()}${Array.from({ length: n }, () => `${this.space()}${this.key()}${this.space()}:${this.space()}${this.value(depth + 1)}${this.space()}`).join(",")}}`;
      }
    }
  }

  /** A text that is often, but not always, still JSON: one byte inserted, removed or replaced. */
  mutate(text: string): string {
    const at = this.int(text.length + 1);
    const byte = this.pickOne(["", '"', "\\", ",", ":", "{", "}", "[", "]", "x", "0", "-", ".", "e", " ", "\u0001", "\u000b", "u"]);
    switch (this.int(3)) {
      case 0:
        return text.slice(0, at) + byte + text.slice(at);
      case 1:
        return text.slice(0, at) + text.slice(at + 1);
      default:
        return text.slice(0, at) + byte + text.slice(at + 1);
    }
  }
}

const PICK: FieldPick = { id: true, model: true, metadata: { user_api_key_alias: true, id: true }, "": true };

/**
 * `bytes` as a Buffer at byte `offset` of a larger ArrayBuffer (or SharedArrayBuffer, as the parse workers get)
 * whose other bytes are string content up to a quote at its very end: a reader that strays past its buffer's end
 * reads on to that quote, as it would into the stale bytes of reused storage.
 */
function placed(bytes: Uint8Array, offset: number, shared = false): Buffer {
  const storage = shared ? new SharedArrayBuffer(offset + bytes.length + 8) : new ArrayBuffer(offset + bytes.length + 8);
  const all = new Uint8Array(storage).fill(0x61);
  all[all.length - 1] = 0x22;
  all.set(bytes, offset);
  return Buffer.from(storage, offset, bytes.length);
}

/** Where each reader meets a string: a picked value, a skipped value, a key at the picked level, a key in a skipped object. */
const ROLES: ReadonlyArray<readonly [string, string]> = [
  ['{"id":', "}"],
  ['{"messages":', "}"],
  ["{", ":1}"],
  ['{"messages":{', ":1}}"],
];

/** The text `{before}"{content}"{after}` as bytes (content is raw bytes: bytes >= 0x80 need not be valid UTF-8). */
function quoted(before: string, content: readonly number[], after: string): Buffer {
  return Buffer.concat([Buffer.from(`${before}"`, "latin1"), Buffer.from(content), Buffer.from(`"${after}`, "latin1")]);
}

/** Plain string bytes at the edges of the word tests: around 0x20, 0x22 and 0x5c, and bytes >= 0x80 (some of them 0x22 or 0x5c plus 0x80). */
const PLAIN_BYTES = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x61, 0x7f, 0x80, 0x9f, 0xa0, 0xa2, 0xc3, 0xdc, 0xdd, 0xe0, 0xff];

/** What ends a string's plain bytes: control bytes, a quote, and escapes (a bad one last). */
const STOPS: ReadonlyArray<readonly number[]> = [[0x00], [0x01], [0x09], [0x0a], [0x1f], [0x22], [0x5c, 0x22], [0x5c, 0x5c], [0x5c, 0x6e], [0x5c, 0x75, 0x30, 0x30, 0x65, 0x39], [0x5c, 0x78]];

describe("JsonScanner: reads only the picked fields, accepts exactly what JSON.parse accepts", function () {
  const scanner = new JsonScanner(PICK);

  it("gives JSON.parse's value, reduced to the pick, for generated documents", function () {
    const generator = new Generator(prng(11));
    for (let i = 0; i < 5000; i++) {
      const text = `${generator.space()}${generator.value()}${generator.space()}`;
      expect(scanned(scanner, text), text).to.deep.equal(expected(text, PICK));
    }
  });

  it("refuses a mutated document exactly when JSON.parse refuses it", function () {
    const generator = new Generator(prng(12));
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = Buffer.from(generator.mutate(generator.value()), "utf8").toString("utf8");
      const want = expected(text, PICK);
      if (!want.ok) refused += 1;
      expect(scanned(scanner, text), JSON.stringify(text)).to.deep.equal(want);
    }
    // the mutations break the grammar often enough for this to test refusals
    expect(refused).to.be.greaterThan(5000);
  });

  it("refuses what JSON.parse refuses, at the byte where it breaks", function () {
    const cases: Array<[string, number]> = [
      ["", 0],
      ["[1,]", 3],
      ["[1 2]", 3],
      ['{"a" 1}', 5],
      ['{"a":1,}', 7],
      ["{1:2}", 1],
      ["01", 1],
      ["1.", 2],
      ["1e", 2],
      ["-", 1],
      ["+1", 0],
      [".5", 0],
      ["tru", 0],
      ["nul", 0],
      ['"abc', 4],
      ['"a\\x"', 3],
      ['"\\u12G4"', 2],
      ['"a\u0001b"', 2],
      ['"a\tb"', 2],
      ["[1]]", 3],
      ["[[1]", 4],
      ['{"a":[1}', 7],
      ["\u000b1", 0],
      ["NaN", 0],
    ];
    for (const [text, at] of cases) {
      expect(() => JSON.parse(text), text).to.throw(SyntaxError);
      expect(scanner.scan(Buffer.from(text, "utf8")), JSON.stringify(text)).to.deep.equal({ ok: false, at });
    }
  });

  it("stops at a quote, a backslash or a control byte at each byte of a word, next to bytes >= 0x80, at every offset of the buffer", function () {
    const random = prng(13);
    const plain = () => PLAIN_BYTES[Math.floor(random() * PLAIN_BYTES.length)]!;
    for (let offset = 0; offset < 4; offset++) {
      for (const [before, after] of ROLES) {
        for (let lead = 0; lead < 8; lead++) {
          for (const stop of STOPS) {
            const content = [...Array.from({ length: lead }, plain), ...stop, plain(), plain(), plain()];
            const bytes = quoted(before, content, after);
            const result = scanner.scan(placed(bytes, offset));
            const text = bytes.toString("utf8");
            expect(result.ok ? { ok: true, value: result.value } : { ok: false }, JSON.stringify(text)).to.deep.equal(expected(text, PICK));
            // a control byte is refused where it is, not a word later
            if (stop[0]! < 0x20) expect(result, JSON.stringify(text)).to.deep.equal({ ok: false, at: before.length + 1 + lead });
          }
        }
      }
    }
  });

  it("reads generated strings of plain bytes, bytes >= 0x80 and escapes as JSON.parse does, in buffers at any offset", function () {
    const random = prng(14);
    const int = (below: number) => Math.floor(random() * below);
    for (let i = 0; i < 20_000; i++) {
      const content: number[] = [];
      const length = int(40);
      while (content.length < length) {
        if (int(12) === 0) content.push(...STOPS[int(STOPS.length)]!);
        else content.push(int(2) === 0 ? PLAIN_BYTES[int(PLAIN_BYTES.length)]! : 0x20 + int(0xe0));
      }
      const [before, after] = ROLES[int(ROLES.length)]!;
      const bytes = quoted(before, content, after);
      const result = scanner.scan(placed(bytes, int(8), int(4) === 0));
      const text = bytes.toString("utf8");
      expect(result.ok ? { ok: true, value: result.value } : { ok: false }, JSON.stringify(text)).to.deep.equal(expected(text, PICK));
    }
  });

  it("reads only its buffer's bytes: a string that ends with the buffer, or is still open there", function () {
    for (let offset = 0; offset < 4; offset++) {
      for (let length = 0; length < 13; length++) {
        const content = PLAIN_BYTES.slice(0, length);
        const string = quoted("", content, "");
        expect(scanner.scan(placed(string, offset)), `${length} bytes at ${offset}`).to.deep.equal({ ok: true, value: string.toString("utf8", 1, string.length - 1) });
        for (const before of ['"', '["', '{"id":"', '{"messages":"', '{"', '{"messages":{"']) {
          const open = Buffer.concat([Buffer.from(before, "latin1"), Buffer.from(content)]);
          expect(scanner.scan(placed(open, offset, offset === 3)), `${before} and ${length} bytes at ${offset}`).to.deep.equal({ ok: false, at: open.length });
        }
      }
    }
  });

  it("builds numbers as JSON.parse does: integers up to 2^53 scaled by 10^-22 to 10^22, and others", function () {
    const random = prng(15);
    const int = (below: number) => Math.floor(random() * below);
    const digits = (length: number) => Array.from({ length }, () => int(10)).join("");
    // the edges: 2^53 (an odd mantissa above it is rounded before it is scaled), 10^22 and 10^23 either way, -0, the
    // smallest and largest doubles, and then numbers of up to 39 digits with exponents around 22
    const numbers = ["0", "-0", "-0.0e-5", "9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740993", "900719925474099.3", "9007199254740993e1", "90071992547409.93", "9007199254.740993", "1e22", "1e23", "3e23", "7e-22", "7e-23", "123456789012345e22", "0.30000000000000004", "5e-324", "1.7976931348623157e308", "1e400", "1796369007.679000", "7.569460868835449", "1E+2", "1e-0"];
    for (let i = 0; i < 20_000; i++) {
      const integer = int(4) === 0 ? "0" : `${1 + int(9)}${digits(int(19))}`;
      const fraction = int(2) === 0 ? "" : `.${digits(1 + int(19))}`;
      const exponent = int(2) === 0 ? "" : `${int(2) === 0 ? "e" : "E"}${["", "+", "-"][int(3)]}${int(8) === 0 ? digits(1 + int(3)) : 15 + int(12)}`;
      numbers.push(`${int(2) === 0 ? "-" : ""}${integer}${fraction}${exponent}`);
    }
    for (let at = 0; at < numbers.length; at += 100) {
      const text = `[${numbers.slice(at, at + 100).join(",")}]`;
      expect(scanned(scanner, text), text).to.deep.equal(expected(text, PICK));
    }
  });

  it("keeps the last of repeated keys and reads escaped key names, as JSON.parse does", function () {
    const text = '{"id":"first","i\\u0064":"second","metadata":{"id":1},"metadata":{"user_api_key_alias":"k"}}';
    expect(scanned(scanner, text)).to.deep.equal({ ok: true, value: { id: "second", metadata: { user_api_key_alias: "k" } } });
  });

  it("with nonFinite, builds picked NaN, Infinity and -Infinity alike (as null) and reports where each is", function () {
    const reader = new JsonScanner(PICK, { nonFinite: true });
    const text = '[{"id":NaN,"model":"m"},{"id":Infinity},{"id":-Infinity,"metadata":{"id":-Infinity}},{"model":[NaN,-Infinity]},{"id":-1.5}]';
    const result = reader.scan(Buffer.from(text, "utf8"));
    expect(result.ok).to.equal(true);
    if (!result.ok) return;
    expect(result.value).to.deep.equal([{ id: null, model: "m" }, { id: null }, { id: null, metadata: { id: null } }, { model: [null, null] }, { id: -1.5 }]);
    expect(result.nonFinite?.map((hit) => [hit.index, text.slice(hit.at, hit.at + 4)])).to.deep.equal([
      [0, "NaN,"],
      [1, "Infi"],
      [2, "-Inf"],
      [2, "-Inf"],
      [3, "NaN,"],
      [3, "-Inf"],
    ]);
    // inside a value built whole, the tokens become null and a string that spells one stays a string
    const inner = reader.scan(Buffer.from('{"model":{"a":"NaN","b":[Infinity,{"c":-Infinity}],"d":"é-Infinity"}}', "utf8"));
    expect(inner).to.deep.include({ ok: true, value: { model: { a: "NaN", b: [null, { c: null }], d: "é-Infinity" } } });
    // without nonFinite, each of them is not JSON
    for (const token of ["NaN", "Infinity", "-Infinity"]) expect(scanned(scanner, `{"id":${token}}`).ok, token).to.equal(false);
  });

  it("skips a document nested a hundred thousand deep without overflowing the stack", function () {
    const deep = `{"messages":${"[".repeat(100_000)}${"]".repeat(100_000)},"id":"x"}`;
    expect(scanned(scanner, deep)).to.deep.equal({ ok: true, value: { id: "x" } });
    expect(scanned(scanner, `{"messages":${"[".repeat(100_000)}}`).ok).to.equal(false);
  });

  it("reads LiteLLM's real payloads as JSON.parse does, for the fields billing reads", function () {
    for (const name of ["01_openai_gpt4_turbo_success.json", "05_failure_rate_limit.json", "12_generic_api_batch_json_array.json"]) {
      const text = fixture(name);
      expect(scanned(new JsonScanner(SPEND_LOG_FIELDS), text), name).to.deep.equal(expected(text, SPEND_LOG_FIELDS));
    }
  });
});

describe("parseBody: the byte reader and the text reader agree", function () {
  const scanner = new JsonScanner(SPEND_LOG_FIELDS);
  const one = fixture("01_openai_gpt4_turbo_success.json").trim();
  const two = fixture("05_failure_rate_limit.json").trim();

  /** entries reduced to the fields billing reads (the byte reader leaves some bodies to the text reader, whole) */
  function reduced(parsed: ReturnType<typeof parseBody>) {
    if (!parsed.ok) return parsed;
    return { ...parsed, entries: parsed.entries.map((entry) => ("value" in entry ? { index: entry.index, value: reduce(entry.value, SPEND_LOG_FIELDS) } : entry)) };
  }

  it("on every format, with whitespace, BOMs and broken lines", function () {
    const bodies = [
      `[${one},null,${two}]`,
      `  \r\n[${one}]\n\n`,
      one,
      `\u000b${one}\u000c`,
      `\ufeff[${one}]`,
      `[${one}]\u00a0`,
      `${one}\n${two}\n`,
      `${one}\r\n\r\n${two}`,
      `${one}\n{"id": "broken",\n${two}`,
      `${one}\n\u00a0\n${two}`,
      `${one}\n[1,2]\n"text"\n${two}`,
      `{"id": "a"}\n{"id": `,
      `[${one},`,
      `{"id": "a"} x`,
      "hello",
      "",
      " \n\t ",
      "[]",
      "{}",
      `[${one}]]`,
    ];
    for (const body of bodies) {
      expect(reduced(parseBody(Buffer.from(body, "utf8"), scanner)), JSON.stringify(body.slice(0, 40))).to.deep.equal(reduced(parseBody(body)));
    }
  });
});

describe("BodyJoiner: a body's chunks as one byte array, in reused storage", function () {
  it("joins each body whole, a shorter one after a longer one included", function () {
    const joiner = new BodyJoiner();
    const random = prng(5);
    for (const size of [200_000, 70_000, 1, 300_000, 0]) {
      const body = Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256)));
      const chunks: Buffer[] = [];
      for (let at = 0; at < size; at += 65_536) chunks.push(Buffer.from(body.subarray(at, at + 65_536)));
      expect(Buffer.compare(joiner.join(chunks.length === 0 ? [Buffer.alloc(0)] : chunks), body), `${size} bytes`).to.equal(0);
    }
  });
});
