/**
 * Fail-over across several RPC endpoints of one chain. Each request goes to the first endpoint whose circuit is
 * closed (in configured order, so the preferred endpoint is used whenever it is healthy); a transport failure
 * counts against that endpoint and the request moves on to the next. A JSON-RPC error is the node's answer and is
 * returned at once. When every endpoint is failing, the request waits and retries until `deadlineMs`.
 */
import type { Logger } from "pino";

import { CircuitBreaker, type CircuitBreakerOptions } from "./circuit-breaker.js";
import { JsonRpcEndpoint, TransportError } from "./json-rpc.js";

export interface RpcPoolOptions {
  /** per-request timeout (ms, default 10,000) */
  timeoutMs?: number;
  /** give up on a request after this long across all endpoints (ms, default 30,000) */
  deadlineMs?: number;
  breaker?: CircuitBreakerOptions;
  logger?: Logger;
}

export class AllEndpointsFailedError extends Error {
  override readonly name = "AllEndpointsFailedError";
}

interface Member {
  endpoint: JsonRpcEndpoint;
  breaker: CircuitBreaker;
}

export class RpcPool {
  private readonly members: Member[];
  private readonly deadlineMs: number;
  private readonly logger: Logger | undefined;

  constructor(urls: readonly string[], options: RpcPoolOptions = {}) {
    if (urls.length === 0) throw new Error("an RPC pool needs at least one URL");
    this.members = urls.map((url) => ({
      endpoint: new JsonRpcEndpoint(url, options.timeoutMs ?? 10_000),
      breaker: new CircuitBreaker(options.breaker),
    }));
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.logger = options.logger;
  }

  /** Endpoint labels and circuit states, for metrics and status. */
  health(): { endpoint: string; state: string }[] {
    return this.members.map((m) => ({ endpoint: m.endpoint.label, state: m.breaker.state }));
  }

  async request<T>(method: string, params: unknown[] = []): Promise<T> {
    const started = Date.now();
    let last: TransportError | undefined;
    for (let round = 0; ; round++) {
      for (const member of this.members) {
        if (!member.breaker.tryAcquire()) continue;
        try {
          const result = await member.endpoint.request<T>(method, params);
          member.breaker.onSuccess();
          return result;
        } catch (error) {
          if (!(error instanceof TransportError)) {
            member.breaker.onSuccess(); // the node answered
            throw error;
          }
          member.breaker.onFailure();
          last = error;
          this.logger?.warn({ endpoint: member.endpoint.label, method, err: error.message }, "RPC endpoint failed");
        }
      }
      if (Date.now() - started >= this.deadlineMs) {
        throw new AllEndpointsFailedError(`${method}: every RPC endpoint failed (${last?.message ?? "all circuits open"})`, {
          cause: last,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** round, 2000)));
    }
  }
}
