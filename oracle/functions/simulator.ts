/**
 * A Node stand-in for the Chainlink Functions DON, enough to run this repository's Functions sources locally: it
 * decodes a request's CBOR (as `FunctionsRequest.encodeCBOR` builds it on-chain), runs the inline JavaScript in a
 * fresh `node:vm` context with `args`, `bytesArgs`, `secrets` and a `Functions` object (`makeHttpRequest` over the
 * real `fetch`, `encodeUint256`, `encodeInt256`, `encodeString`), and enforces the DON's limits: at most 5 HTTP
 * requests, 9 s per request, 10 s in all, a response of at most 256 bytes. What it returns is what the test router
 * hands to `handleOracleFulfillment`: the response bytes, or the error message as UTF-8 bytes.
 *
 * It is not the DON: there is no consensus between nodes, no Deno, and only what the source can reach from this
 * machine. Sources that pass here use nothing but the documented Functions API.
 */
import { runInNewContext } from "node:vm";

export const LIMITS = {
  maxHttpRequests: 5,
  httpTimeoutMs: 9_000,
  defaultHttpTimeoutMs: 3_000,
  executionTimeoutMs: 10_000,
  maxResponseBytes: 256,
} as const;

/** A Functions request as the DON reads it from the router's `data`. */
export interface FunctionsRequestData {
  codeLocation: number;
  language: number;
  source: string;
  args: string[];
  bytesArgs: Uint8Array[];
  secretsLocation?: number;
  /** The encrypted secrets reference (for DON-hosted secrets: CBOR of slotID and version). */
  secrets?: Uint8Array;
}

export interface RunOptions {
  args?: string[];
  bytesArgs?: Uint8Array[];
  /** What the DON decrypts from the secrets reference; in production the DON-hosted secrets. */
  secrets?: Record<string, string>;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  executionTimeoutMs?: number;
}

export interface RunResult {
  /** The response bytes (exactly one of response and error is set). */
  response?: Uint8Array;
  /** The error message the DON reports, when the source threw or broke a limit. */
  error?: string;
  httpRequests: number;
  logs: string[];
}

interface HttpRequestOptions {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  data?: unknown;
  timeout?: number;
  responseType?: "json" | "text" | "arraybuffer";
}

type HttpResponse =
  | { error?: undefined; data: unknown; status: number; statusText: string; headers: Record<string, string> }
  | {
      error: true;
      message: string;
      code: string;
      response?: { status: number; statusText: string; headers: Record<string, string>; data: unknown };
    };

/** Runs a Functions source the way the DON does and returns its response or error. Never throws for the source. */
export async function runSource(source: string, options: RunOptions = {}): Promise<RunResult> {
  const logs: string[] = [];
  let httpRequests = 0;
  const doFetch = options.fetch ?? fetch;

  const makeHttpRequest = async (request: HttpRequestOptions): Promise<HttpResponse> => {
    if (++httpRequests > LIMITS.maxHttpRequests) {
      throw new Error(`more than ${LIMITS.maxHttpRequests} HTTP requests`);
    }
    const timeout = Math.min(request.timeout ?? LIMITS.defaultHttpTimeoutMs, LIMITS.httpTimeoutMs);
    const url = new URL(request.url);
    for (const [key, value] of Object.entries(request.params ?? {})) url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { ...(request.headers ?? {}) };
    let body: string | undefined;
    if (request.data !== undefined) {
      body = typeof request.data === "string" ? request.data : JSON.stringify(request.data);
      headers["Content-Type"] ??= "application/json";
    }
    try {
      const res = await doFetch(url, {
        method: (request.method ?? "GET").toUpperCase(),
        headers,
        body,
        signal: AbortSignal.timeout(timeout),
      });
      const responseHeaders = Object.fromEntries(res.headers.entries());
      const text = await res.text();
      let data: unknown = text;
      if ((request.responseType ?? "json") === "json") {
        try {
          data = JSON.parse(text);
        } catch {
          data = text;
        }
      } else if (request.responseType === "arraybuffer") {
        data = new TextEncoder().encode(text).buffer;
      }
      if (res.status < 200 || res.status >= 300) {
        return {
          error: true,
          message: `Request failed with status code ${res.status}`,
          code: "ERR_BAD_RESPONSE",
          response: { status: res.status, statusText: res.statusText, headers: responseHeaders, data },
        };
      }
      return { data, status: res.status, statusText: res.statusText, headers: responseHeaders };
    } catch (e) {
      const name = (e as { name?: string }).name;
      return {
        error: true,
        message: name === "TimeoutError" ? `timeout of ${timeout}ms exceeded` : String((e as Error).message ?? e),
        code: name === "TimeoutError" ? "ECONNABORTED" : "ERR_NETWORK",
      };
    }
  };

  const Functions = Object.freeze({ makeHttpRequest, encodeUint256, encodeInt256, encodeString });
  const sandbox = {
    args: Object.freeze([...(options.args ?? [])]),
    bytesArgs: Object.freeze([...(options.bytesArgs ?? [])]),
    secrets: Object.freeze({ ...(options.secrets ?? {}) }),
    Functions,
    console: { log: (...items: unknown[]) => logs.push(items.map(String).join(" ")) },
  };

  const limitMs = options.executionTimeoutMs ?? LIMITS.executionTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  try {
    const run = runInNewContext(`(async () => {\n${source}\n})()`, sandbox, {
      filename: "functions-source.js",
      timeout: limitMs,
    }) as Promise<unknown>;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`execution exceeded ${limitMs} ms`)), limitMs);
    });
    const value = await Promise.race([run, timedOut]);
    if (!isUint8Array(value)) return { error: "source did not return a Uint8Array", httpRequests, logs };
    const response = new Uint8Array(value);
    if (response.length > LIMITS.maxResponseBytes) {
      return { error: `response of ${response.length} bytes exceeds ${LIMITS.maxResponseBytes}`, httpRequests, logs };
    }
    return { response, httpRequests, logs };
  } catch (e) {
    const message = typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e);
    return { error: message, httpRequests, logs };
  } finally {
    clearTimeout(timer);
  }
}

/** Decodes a request's `data` (hex or bytes) and runs its inline source with `secrets`. */
export async function simulateRequest(
  data: string | Uint8Array,
  options: Omit<RunOptions, "args" | "bytesArgs"> = {},
): Promise<RunResult & { request: FunctionsRequestData }> {
  const request = decodeRequest(data);
  if (request.codeLocation !== 0 || request.language !== 0) {
    throw new Error(`only inline JavaScript is supported (codeLocation ${request.codeLocation})`);
  }
  const result = await runSource(request.source, { ...options, args: request.args, bytesArgs: request.bytesArgs });
  return { ...result, request };
}

/** What the router delivers for a run: `[response, err]` as 0x-hex. */
export function toFulfillment(result: RunResult): [string, string] {
  if (result.error !== undefined) return ["0x", hex(new TextEncoder().encode(result.error).slice(0, LIMITS.maxResponseBytes))];
  return [hex(result.response!), "0x"];
}

// ------------------------------------------------------------------ encoders (the Functions library's)

export function encodeUint256(value: bigint | number): Uint8Array {
  const n = toBigInt(value);
  if (n < 0n) throw new Error("encodeUint256 invalid input: negative");
  if (n >= 1n << 256n) throw new Error("encodeUint256 invalid input: too large");
  return word(n);
}

export function encodeInt256(value: bigint | number): Uint8Array {
  const n = toBigInt(value);
  if (n >= 1n << 255n || n < -(1n << 255n)) throw new Error("encodeInt256 invalid input: out of range");
  return word(n < 0n ? (1n << 256n) + n : n);
}

export function encodeString(value: string): Uint8Array {
  if (typeof value !== "string") throw new Error("encodeString invalid input: not a string");
  return new TextEncoder().encode(value);
}

function toBigInt(value: bigint | number): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  throw new Error(`invalid integer: ${String(value)}`);
}

function word(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function isUint8Array(value: unknown): value is Uint8Array {
  return Object.prototype.toString.call(value) === "[object Uint8Array]";
}

function hex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString("hex")}`;
}

// ------------------------------------------------------------------ CBOR (the subset FunctionsRequest writes)

/** Decodes `FunctionsRequest.encodeCBOR` output: a run of text keys each followed by its value. */
export function decodeRequest(data: string | Uint8Array): FunctionsRequestData {
  const bytes = typeof data === "string" ? Uint8Array.from(Buffer.from(data.replace(/^0x/, ""), "hex")) : data;
  const reader = new CborReader(bytes);
  const fields: Record<string, unknown> = {};
  while (!reader.done()) {
    const key = reader.item();
    if (typeof key !== "string") throw new Error("CBOR request: key is not a text string");
    fields[key] = reader.item();
  }
  const source = fields.source;
  if (typeof source !== "string") throw new Error("CBOR request: no source");
  return {
    codeLocation: Number(fields.codeLocation ?? 0),
    language: Number(fields.language ?? 0),
    source,
    args: (fields.args as string[] | undefined) ?? [],
    bytesArgs: (fields.bytesArgs as Uint8Array[] | undefined) ?? [],
    secretsLocation: fields.secretsLocation === undefined ? undefined : Number(fields.secretsLocation),
    secrets: fields.secrets as Uint8Array | undefined,
  };
}

const BREAK = Symbol("break");

class CborReader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  done(): boolean {
    return this.offset >= this.bytes.length;
  }

  item(): unknown {
    const value = this.next();
    if (value === BREAK) throw new Error("CBOR: unexpected break");
    return value;
  }

  private next(): unknown {
    const initial = this.byte();
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) {
      if (info === 31) return BREAK;
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22) return null;
      if (info === 23) return undefined;
      throw new Error(`CBOR: unsupported simple value ${info}`);
    }
    if (info === 31) {
      if (major !== 4) throw new Error(`CBOR: unsupported indefinite major type ${major}`);
      const items: unknown[] = [];
      for (let v = this.next(); v !== BREAK; v = this.next()) items.push(v);
      return items;
    }
    const length = this.argument(info);
    switch (major) {
      case 0:
        return length;
      case 1:
        return -1n - length;
      case 2:
        return this.take(length);
      case 3:
        return new TextDecoder("utf-8", { fatal: true }).decode(this.take(length));
      case 4:
        return Array.from({ length: Number(length) }, () => this.item());
      case 6: {
        const content = this.item();
        if ((length === 2n || length === 3n) && content instanceof Uint8Array) {
          const n = BigInt(`0x${Buffer.from(content).toString("hex") || "0"}`);
          return length === 2n ? n : -1n - n;
        }
        return content;
      }
      default:
        throw new Error(`CBOR: unsupported major type ${major}`);
    }
  }

  private argument(info: number): bigint {
    if (info < 24) return BigInt(info);
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) throw new Error(`CBOR: bad additional info ${info}`);
    let n = 0n;
    for (const b of this.take(BigInt(size))) n = (n << 8n) | BigInt(b);
    return n;
  }

  private byte(): number {
    if (this.offset >= this.bytes.length) throw new Error("CBOR: truncated");
    return this.bytes[this.offset++]!;
  }

  private take(length: bigint): Uint8Array {
    const end = this.offset + Number(length);
    if (end > this.bytes.length) throw new Error("CBOR: truncated");
    const out = this.bytes.slice(this.offset, end);
    this.offset = end;
    return out;
  }
}
