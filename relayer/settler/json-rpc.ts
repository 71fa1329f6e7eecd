/**
 * One JSON-RPC endpoint over HTTP. Separates the two ways a request fails: a `TransportError` (unreachable,
 * timeout, connection dropped, HTTP error, unreadable body: try another endpoint) and a `JsonRpcError` (the node
 * answered with an error: a fact about the request, returned as is).
 */
import { redactUrl } from "../chain/networks.js";

export class TransportError extends Error {
  override readonly name = "TransportError";
  constructor(
    message: string,
    readonly endpoint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class JsonRpcError extends Error {
  override readonly name = "JsonRpcError";
  constructor(
    readonly method: string,
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

let nextId = 1;

export class JsonRpcEndpoint {
  readonly label: string;

  constructor(
    readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.label = redactUrl(url);
  }

  async request<T>(method: string, params: unknown[]): Promise<T> {
    const id = nextId++;
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id, method, params }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new TransportError(`${method}: ${describe(error)}`, this.label, { cause: error });
    }
    let body: { result?: T; error?: { code: number; message: string; data?: unknown } };
    try {
      body = (await response.json()) as typeof body;
    } catch (error) {
      throw new TransportError(`${method}: HTTP ${response.status} with an unreadable body`, this.label, { cause: error });
    }
    // Rate limits and server errors are the endpoint's trouble, not the request's: try another endpoint.
    if (response.status === 429 || response.status >= 500 || body.error?.code === -32005) {
      throw new TransportError(`${method}: HTTP ${response.status}${body.error ? ` (${body.error.message})` : ""}`, this.label);
    }
    if (body.error !== undefined) throw new JsonRpcError(method, body.error.code, body.error.message, body.error.data);
    if (!response.ok) throw new TransportError(`${method}: HTTP ${response.status}`, this.label);
    if (!("result" in body)) throw new TransportError(`${method}: a response without result or error`, this.label);
    return body.result as T;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return "timed out";
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? error.message;
  }
  return String(error);
}
