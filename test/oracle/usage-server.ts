/**
 * A provider usage API for tests, on 127.0.0.1 and a free port: `GET /v1/usage?provider=&model=&payer=&start=&end=`
 * with `Authorization: Bearer <key>` answers the tokens recorded for that payer, provider and model with
 * `start <= at < end`, echoing the query. `override` lets a test make it misbehave.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface UsageRecord {
  provider: string;
  model: string;
  /** lowercase 0x address */
  payer: string;
  /** unix seconds */
  at: number;
  tokens: bigint;
}

export interface UsageQuery {
  provider: string;
  model: string;
  payer: string;
  start: string;
  end: string;
}

export type Override = (query: UsageQuery, res: ServerResponse) => boolean;

export class UsageServer {
  readonly records: UsageRecord[] = [];
  readonly queries: UsageQuery[] = [];
  override: Override | undefined;
  private server: Server | undefined;

  constructor(readonly apiKey: string) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error("usage server not started");
    return `http://127.0.0.1:${address.port}`;
  }

  add(record: Omit<UsageRecord, "payer"> & { payer: string }): void {
    this.records.push({ ...record, payer: record.payer.toLowerCase() });
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== "/v1/usage") return send(res, 404, { error: "not found" });
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) return send(res, 401, { error: "unauthorized" });
    const param = (name: string) => url.searchParams.get(name) ?? "";
    const query: UsageQuery = {
      provider: param("provider"),
      model: param("model"),
      payer: param("payer"),
      start: param("start"),
      end: param("end"),
    };
    this.queries.push(query);
    if (this.override?.(query, res)) return;
    const [start, end] = [Number(query.start), Number(query.end)];
    if (!Number.isInteger(start) || !Number.isInteger(end) || start >= end) {
      return send(res, 400, { error: "bad window" });
    }
    let tokens = 0n;
    for (const r of this.records) {
      if (r.provider === query.provider && r.model === query.model && r.payer === query.payer.toLowerCase()) {
        if (r.at >= start && r.at < end) tokens += r.tokens;
      }
    }
    send(res, 200, { ...query, tokens: tokens.toString() });
  }
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
