/**
 * A loopback JSON-RPC proxy that misbehaves on demand, in front of a real node: it answers HTTP 500, never answers
 * (timeout), or drops the connection, always or with a probability, and counts what it did; or it answers every
 * eth_sendRawTransaction with a node's JSON-RPC error (the text another client, e.g. geth, sends), forwarding the rest.
 */
import { createServer, type Server } from "node:http";
import { once } from "node:events";

export type Fault = "error" | "timeout" | "drop";

export interface FaultProxy {
  url: string;
  /** no faults */
  heal(): void;
  /** every request fails this way */
  fail(fault: Fault): void;
  /** each request fails with probability `p`, with one of `faults` */
  flaky(p: number, faults?: Fault[]): void;
  /** answers every eth_sendRawTransaction with this JSON-RPC error message (code -32000); null forwards them again */
  refuseSends(message: string | null): void;
  stats: { forwarded: number; faulted: number };
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string, seed = 1): Promise<FaultProxy> {
  let always: Fault | null = null;
  let probability = 0;
  let faults: Fault[] = ["error", "timeout", "drop"];
  let sendError: string | null = null;
  let state = seed >>> 0;
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 4294967296;
  };
  const stats = { forwarded: 0, faulted: 0 };
  const hanging = new Set<import("node:http").ServerResponse>();

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const fault = always ?? (random() < probability ? faults[Math.floor(random() * faults.length)]! : null);
    if (fault !== null) {
      stats.faulted++;
      if (fault === "error") {
        res.writeHead(500, { "content-type": "text/plain" }).end("upstream exploded");
      } else if (fault === "drop") {
        req.socket.destroy();
      } else {
        hanging.add(res); // never answered; closed with the proxy
      }
      return;
    }
    if (sendError !== null) {
      const request = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown; method?: string };
      if (request.method === "eth_sendRawTransaction") {
        stats.faulted++;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: request.id ?? null, error: { code: -32000, message: sendError } }));
        return;
      }
    }
    stats.forwarded++;
    try {
      const response = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) });
      res.writeHead(response.status, { "content-type": "application/json" }).end(Buffer.from(await response.arrayBuffer()));
    } catch {
      res.writeHead(502).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    stats,
    heal() {
      always = null;
      probability = 0;
      sendError = null;
    },
    refuseSends(message) {
      sendError = message;
    },
    fail(fault) {
      always = fault;
    },
    flaky(p, which = ["error", "timeout", "drop"]) {
      always = null;
      probability = p;
      faults = which;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}
