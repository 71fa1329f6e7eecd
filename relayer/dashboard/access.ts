/**
 * Who may read the dashboard (the page and its JSON API); billing data is private.
 *
 * - The client is judged by the socket's remote address, never by headers (X-Forwarded-For and the like are
 *   ignored): without `dashboard.allow_remote`, only loopback clients (127.0.0.0/8, ::1) are answered (403).
 * - When tokens are set (`dashboard.tokens_env`), every request needs one, loopback included (401): as
 *   `Authorization: Bearer <token>`, or the cookie that `GET /?token=<token>` sets for a browser. Tokens are
 *   compared in constant time (ingest's BearerAuth: both sides hashed, every token compared).
 * - Without tokens, a loopback request must also name a loopback host (`Host: 127.0.0.1:8790`, `localhost`,
 *   `[::1]`): a web page elsewhere cannot reach the dashboard through a DNS name rebound to 127.0.0.1.
 */
import { BearerAuth } from "../ingest/auth.js";

export const COOKIE_NAME = "agentgpt_dashboard";

export interface AccessRequest {
  /** the socket's remote address (request.raw.socket.remoteAddress) */
  readonly remoteAddress: string | undefined;
  readonly authorization: string | undefined;
  readonly cookie: string | undefined;
  readonly host: string | undefined;
}

export type AccessDecision = { readonly ok: true } | { readonly ok: false; readonly status: 401 | 403; readonly error: string; readonly reason: string };

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Host header naming a loopback address or localhost, with or without a port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d+$/, "");
  return name === "localhost" || name === "[::1]" || isLoopback(name);
}

/**
 * The value of cookie `name` in a Cookie header; undefined when absent or not valid percent-encoding (a malformed
 * cookie is no token: the request gets the 401 of a missing one, not an error).
 */
export function cookieValue(header: string | undefined, name = COOKIE_NAME): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export class DashboardAccess {
  private readonly auth: BearerAuth | null;

  constructor(
    readonly options: { readonly allowRemote: boolean; readonly tokens: readonly string[]; readonly tokensEnv: string },
  ) {
    if (options.allowRemote && options.tokens.length === 0) throw new Error("a dashboard open to remote clients needs a token");
    this.auth = options.tokens.length === 0 ? null : new BearerAuth(options.tokens);
  }

  get tokenRequired(): boolean {
    return this.auth !== null;
  }

  /** True when `token` is one of the tokens (constant time). */
  checkToken(token: string): boolean {
    return this.auth !== null && this.auth.check(`Bearer ${token}`);
  }

  decide(request: AccessRequest): AccessDecision {
    const loopback = isLoopback(request.remoteAddress);
    if (!loopback && !this.options.allowRemote) {
      return {
        ok: false,
        status: 403,
        error: "forbidden",
        reason: "the dashboard answers loopback clients only: open it on the relayer's machine (or an SSH tunnel), or set dashboard.allow_remote with a token",
      };
    }
    if (this.auth !== null) {
      const cookie = cookieValue(request.cookie);
      const ok = this.auth.check(request.authorization) || (cookie !== undefined && this.checkToken(cookie));
      if (!ok) {
        return {
          ok: false,
          status: 401,
          error: "unauthorized",
          reason: `a token is required: send Authorization: Bearer <token>, or open /?token=<token> once in the browser (tokens: ${this.options.tokensEnv})`,
        };
      }
      return { ok: true };
    }
    if (!isLoopbackHost(request.host)) {
      return { ok: false, status: 403, error: "forbidden", reason: "open the dashboard by a loopback address, e.g. http://127.0.0.1:<port>/" };
    }
    return { ok: true };
  }
}
