/**
 * The demo's provider usage API on 127.0.0.1: what the UsageOracle's Functions source (and the reconciler) asks when
 * an interval is disputed (`GET /v1/usage?provider=&model=&payer=&start=&end=` with a bearer key, answered with the
 * query echoed and `tokens`): the tokens the provider served that payer on that model in calls that STARTED in
 * [start, end) (unix seconds), exactly as recorded with `record`. Calls billed twice are served once, so a second
 * bill of the same calls shows as billed beyond this report.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export class DemoUsageServer {
  /** per provider|model|payer: each call's start time (unix seconds, fractional) and tokens */
  private readonly calls = new Map<string, Array<{ start: number; tokens: bigint }>>();
  private server: Server | undefined;
  /** queries answered, for the demo's narrative */
  readonly queries: Array<{ provider: string; model: string; payer: string; tokens: string }> = [];

  constructor(private readonly apiKey: string) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error("usage server not started");
    return `http://127.0.0.1:${address.port}`;
  }

  /** Records that `provider` served `payer` `tokens` tokens of `model` in a call started at `start` (unix seconds). */
  record(provider: string, model: string, payer: string, tokens: number, start: number): void {
    const key = keyOf(provider, model, payer);
    this.calls.set(key, [...(this.calls.get(key) ?? []), { start, tokens: BigInt(tokens) }]);
  }

  /** What the API answers for this payer, provider and model over calls started in [start, end). */
  reported(provider: string, model: string, payer: string, start: number, end: number): bigint {
    let tokens = 0n;
    for (const call of this.calls.get(keyOf(provider, model, payer)) ?? []) if (call.start >= start && call.start < end) tokens += call.tokens;
    return tokens;
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
    const start = Number(query.start);
    const end = Number(query.end);
    if (!/^\d+$/.test(query.start!) || !/^\d+$/.test(query.end!) || end <= start) return send(res, 400, { error: "start and end: unix seconds, start < end" });
    const tokens = this.reported(query.provider!, query.model!, query.payer!, start, end).toString();
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
