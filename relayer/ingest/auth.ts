/**
 * Bearer-token check for LiteLLM's POSTs. Several tokens may be valid at once (rotation: add the new one, move
 * LiteLLM over, remove the old one). Comparison is constant-time: both sides are hashed to 32 bytes and every
 * configured token is compared, so neither the length nor the position of a match leaks through timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";

import { MIN_TOKEN_LENGTH, type ServerConfig } from "../config/index.js";

export class TokenError extends Error {
  override readonly name = "TokenError";
  readonly code = "TOKEN_INVALID";
}

/** Tokens from server.tokens and the server.tokens_env variable (comma separated). Throws a TokenError naming the source. */
export function collectTokens(server: Pick<ServerConfig, "tokens" | "tokensEnv">, env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const fromEnv = (env[server.tokensEnv] ?? "")
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token !== "");
  const short = fromEnv.findIndex((token) => token.length < MIN_TOKEN_LENGTH);
  if (short !== -1) {
    throw new TokenError(
      `token ${short + 1} in ${server.tokensEnv} is shorter than ${MIN_TOKEN_LENGTH} characters; use a random one (e.g. openssl rand -hex 32)`,
    );
  }
  return [...new Set([...server.tokens, ...fromEnv])];
}

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export class BearerAuth {
  private readonly digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new TokenError("no bearer token is configured");
    this.digests = tokens.map(digest);
  }

  /** True when `authorization` is "Bearer <one of the tokens>". */
  check(authorization: string | undefined): boolean {
    const match = authorization === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    const candidate = digest(match?.[1] ?? "");
    let ok = false;
    for (const expected of this.digests) ok = timingSafeEqual(candidate, expected) || ok;
    return ok && match !== null;
  }
}
