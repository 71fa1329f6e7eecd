/**
 * `server:` the ingest HTTP server that LiteLLM's generic API logger posts to.
 *
 * ```yaml
 * server:
 *   host: 127.0.0.1        # default 127.0.0.1 (loopback); 0.0.0.0 to listen on every interface
 *   port: 8787             # default 8787; 0 picks a free port
 *   body_limit: 64mb       # largest POST body accepted (413 beyond); default 64mb
 *   max_entries: 10000     # most logs in one POST (413 beyond); default 10000
 *   tokens: ["${AGENTGPT_INGEST_TOKEN}"]   # bearer tokens, several for rotation; at least 16 characters each
 *   tokens_env: AGENTGPT_INGEST_TOKENS     # also read tokens (comma separated) from this variable; default shown
 *   parse_workers: auto    # threads that parse POST bodies: auto = twice the CPUs, at most 4; 0 = in the request thread
 * ```
 *
 * Why twice the CPUs: a POST handed to a busy worker waits for that worker's whole parse (10 to 20 ms for 512 logs,
 * longer when a garbage collection or the scheduler stretches it), while with more threads than CPUs it starts at
 * once and the kernel shares the CPUs between the POSTs in progress. On 2 CPUs, 4 workers instead of 2 brought the
 * p99 at 20,000 receipts/s under 100 ms in 8 of 9 runs, against 4 of 9 (bench:ingest, runs interleaved).
 */
import { availableParallelism } from "node:os";

import { z } from "zod";

import { byteSize } from "./fields.js";

export const MIN_TOKEN_LENGTH = 16;

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  /** bytes */
  readonly bodyLimit: number;
  readonly maxEntries: number;
  /** bearer tokens written in the file (after ${VAR} substitution) */
  readonly tokens: readonly string[];
  /** environment variable with more tokens, comma separated */
  readonly tokensEnv: string;
  /** worker threads parsing bodies; 0 = parse in the request thread */
  readonly parseWorkers: number;
}

export const serverSection = () =>
  z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.int().min(0).max(65_535).default(8787),
      body_limit: byteSize().default(64_000_000),
      max_entries: z.int().min(1).max(1_000_000).default(10_000),
      tokens: z
        .array(
          z.string().min(MIN_TOKEN_LENGTH, `a bearer token needs at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32)`),
        )
        .default([]),
      tokens_env: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
        .default("AGENTGPT_INGEST_TOKENS"),
      parse_workers: z.union([z.literal("auto"), z.int().min(0).max(64)]).default("auto"),
    })
    .prefault({})
    .transform(
      (server): ServerConfig => ({
        host: server.host,
        port: server.port,
        bodyLimit: server.body_limit,
        maxEntries: server.max_entries,
        tokens: server.tokens,
        tokensEnv: server.tokens_env,
        parseWorkers: server.parse_workers === "auto" ? Math.min(4, 2 * availableParallelism()) : server.parse_workers,
      }),
    );
