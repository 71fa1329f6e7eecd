/**
 * The demo's provider usage API on 127.0.0.1: what the UsageOracle's Functions source asks when a row is disputed
 * (`GET /v1/usage?provider=&model=&payer=&start=&end=` with a bearer key, answered with the query echoed and
 * `tokens`). It reports the tokens the provider served each payer during the demo session (the session is shorter
 * than the oracle's lookback window, so the window is echoed and not applied); `reportShare` makes one payer's
 * provider-side count lower than what was billed, which is the overcharge the demo's dispute finds.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export class DemoUsageServer {
  private readonly tokens = new Map<string, bigint>();
  private readonly shares = new Map<string, { numerator: bigint; denominator: bigint }>();
  private server: Server | undefined;
  /** queries answered, for the demo's narrative */
  readonly queries: Array<{ provider: string; model: string; payer: string; tokens: string }> = [];

  constructor(private readonly apiKey: string) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error("usage server not started");
    return `http://127.0.0.1:${address.port}`;
  }

  /** Records that `provider` served `payer` `tokens` tokens of `model`. */
  record(provider: string, model: string, payer: string, tokens: number): void {
    const key = keyOf(provider, model, payer);
    this.tokens.set(key, (this.tokens.get(key) ?? 0n) + BigInt(tokens));
  }

  /** From now on the provider reports `numerator/denominator` of this payer's tokens (rounded down). */
  reportShare(provider: string, model: string, payer: string, numerator: bigint, denominator: bigint): void {
    this.shares.set(keyOf(provider, model, payer), { numerator, denominator });
  }

  /** What the API answers for this payer, provider and model. */
  reported(provider: string, model: string, payer: string): bigint {
    const key = keyOf(provider, model, payer);
    const tokens = this.tokens.get(key) ?? 0n;
    const share = this.shares.get(key);
    return share === undefined ? tokens : (tokens * share.numerator) / share.denominator;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== "/v1/usage") return send(res, 404, { error: "not found" });
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) return send(res, 401, { error: "unauthorized" });
    const query = Object.fromEntries(["provider", "model", "payer", "start", "end"].map((name) => [name, url.searchParams.get(name) ?? ""]));
    const tokens = this.reported(query.provider!, query.model!, query.payer!).toString();
    this.queries.push({ provider: query.provider!, model: query.model!, payer: query.payer!, tokens });
    send(res, 200, { ...query, tokens });
  }
}

function keyOf(provider: string, model: string, payer: string): string {
  return `${provider}|${model}|${payer.toLowerCase()}`;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
