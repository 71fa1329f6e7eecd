/**
 * The HTTP JSON usage adapter: `GET <url><path>?provider=&model=&payer=&start=&end=` with an optional bearer key,
 * answered with JSON `{ provider, model, payer, start, end, tokens }` echoing the query, `tokens` a non-negative
 * integer (number or decimal string) below 2^64. This is the API `oracle/functions/provider-usage.js` reads, so one
 * usage service can answer both the reconciler and the oracle, and the reconciler's comparison predicts the
 * oracle's verdict. The key is never logged or put in a message; URLs are redacted.
 */
import { z } from "zod";

import { redactUrl } from "../chain/networks.js";
import { UsageReportError, type UsageAdapter, type UsageQuery } from "./usage-adapter.js";

export interface HttpJsonAdapterOptions {
  readonly provider: string;
  /** base URL of the usage API */
  readonly url: string;
  /** default "/v1/usage" */
  readonly path?: string | undefined;
  /** sent as `Authorization: Bearer <key>` */
  readonly apiKey?: string | undefined;
  /** per request (ms, default 10,000) */
  readonly timeoutMs?: number | undefined;
}

const MAX_TOKENS = 2n ** 64n;

const answer = z.object({
  provider: z.string(),
  model: z.string(),
  payer: z.string(),
  start: z.union([z.string(), z.number()]),
  end: z.union([z.string(), z.number()]),
  tokens: z.union([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().regex(/^(0|[1-9]\d{0,19})$/)]),
});

export class HttpJsonAdapter implements UsageAdapter {
  readonly label: string;
  private readonly endpoint: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: HttpJsonAdapterOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, "")}${options.path ?? "/v1/usage"}`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.label = `http-json ${redactUrl(options.url)}`;
  }

  async usage(query: UsageQuery): Promise<bigint> {
    const url = new URL(this.endpoint);
    const params = { provider: query.provider, model: query.model, payer: query.payer.toLowerCase(), start: String(query.start), end: String(query.end) };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.options.apiKey !== undefined) headers["Authorization"] = `Bearer ${this.options.apiKey}`;
    const fail = (message: string) => new UsageReportError(this.options.provider, `${this.options.provider} usage (${this.label}): ${message}`);
    let response: Response;
    try {
      response = await fetch(url, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      throw fail((error as Error).name === "TimeoutError" ? `no answer in ${this.timeoutMs} ms` : "unreachable");
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw fail(`HTTP ${response.status}${response.status === 401 || response.status === 403 ? " (check the API key)" : ""}`);
    }
    let body: z.output<typeof answer>;
    try {
      body = answer.parse(await response.json());
    } catch {
      throw fail("the answer is not the usage JSON { provider, model, payer, start, end, tokens }");
    }
    const echoed =
      body.provider === params.provider &&
      body.model === params.model &&
      body.payer.toLowerCase() === params.payer &&
      String(body.start) === params.start &&
      String(body.end) === params.end;
    if (!echoed) throw fail("the answer is for another query (provider, model, payer or window differ)");
    const tokens = BigInt(body.tokens);
    if (tokens >= MAX_TOKENS) throw fail("tokens out of range (>= 2^64)");
    return tokens;
  }
}
