/**
 * `dashboard:` the read-only web dashboard that `relayer start` serves (relayer/dashboard): the monitor's figures
 * live, with charts. Without this section no dashboard is served.
 *
 * ```yaml
 * dashboard:
 *   host: 127.0.0.1          # listen address (default 127.0.0.1)
 *   port: 8790               # default 8790; 0 picks a free one
 *   allow_remote: false      # answer clients other than loopback (default false); then every request needs a token
 *   tokens_env: AGENTGPT_DASHBOARD_TOKENS   # variable holding the bearer token(s), comma separated (default shown);
 *                                           # when set, every request needs one, loopback included
 *   refresh: 5s              # how often the figures are read again (default 5s, at least 1s)
 *   since: 24h               # window of settled batches shown (default 24h; 1m to 31d)
 *   recent_batches: 20       # batches listed (default 20)
 *   explorers:               # transaction links per chain: {tx} is replaced by the hash
 *     arbitrum: "https://arbiscan.io/tx/{tx}"   # default for known chain ids (Arbitrum, Polygon and their testnets)
 *   ipfs_gateway: "https://ipfs.io/ipfs/{cid}"  # CID links (default shown); "" for none
 * ```
 * The page loads nothing from the internet (its chart library is served from node_modules); the links above are
 * only followed when clicked.
 */
import { z } from "zod";

import { chainName, durationMs } from "./fields.js";

export interface DashboardConfig {
  readonly host: string;
  readonly port: number;
  readonly allowRemote: boolean;
  /** environment variable with the bearer tokens, comma separated */
  readonly tokensEnv: string;
  readonly refreshMs: number;
  readonly sinceMs: number;
  readonly recentBatches: number;
  /** chain name -> URL template with {tx} */
  readonly explorers: Readonly<Record<string, string>>;
  /** URL template with {cid}; null: no CID links */
  readonly ipfsGateway: string | null;
}

const urlTemplate = (placeholder: string) =>
  z
    .string()
    .regex(/^https?:\/\/\S+$/, "an http:// or https:// URL")
    .refine((url) => url.includes(placeholder), `put ${placeholder} where the value goes, e.g. https://arbiscan.io/tx/{tx}`);

const dashboardFields = () =>
  z.strictObject({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.int().min(0).max(65_535).default(8790),
    allow_remote: z.boolean().default(false),
    tokens_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
      .default("AGENTGPT_DASHBOARD_TOKENS"),
    refresh: durationMs()
      .default(5000)
      .refine((ms) => ms >= 1000, "at least 1s"),
    since: durationMs()
      .default(86_400_000)
      .refine((ms) => ms >= 60_000 && ms <= 31 * 86_400_000, "from 1m to 31d"),
    recent_batches: z.int().min(1).max(500).default(20),
    explorers: z.record(chainName(), urlTemplate("{tx}")).default({}),
    ipfs_gateway: z.union([z.literal(""), urlTemplate("{cid}")]).default("https://ipfs.io/ipfs/{cid}"),
  });

function toConfig(d: z.output<ReturnType<typeof dashboardFields>>): DashboardConfig {
  return {
    host: d.host,
    port: d.port,
    allowRemote: d.allow_remote,
    tokensEnv: d.tokens_env,
    refreshMs: d.refresh,
    sinceMs: d.since,
    recentBatches: d.recent_batches,
    explorers: d.explorers,
    ipfsGateway: d.ipfs_gateway === "" ? null : d.ipfs_gateway,
  };
}

/** `dashboard:` alone (null) or `dashboard: {}` serves it with every default. */
export const dashboardSection = () =>
  dashboardFields()
    .nullable()
    .optional()
    .transform((d): DashboardConfig | undefined => (d === undefined ? undefined : toConfig(d ?? dashboardFields().parse({}))));
