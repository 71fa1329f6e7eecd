/**
 * `startDashboard(config, { logger })`: the dashboard as a stage of `relayer start`, on its own listener
 * (dashboard.host:dashboard.port, loopback by default), apart from ingest's port, which LiteLLM reaches and which
 * may listen on every interface. It reads what the monitor CLI reads (relayer/monitor: the chain's events, Redis,
 * the archive), refreshed at most every `dashboard.refresh`, and only while someone looks. Without a
 * `dashboard:` section it starts nothing.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";

import type { RelayerConfig } from "../config/index.js";
import { collectTokens, TokenError } from "../ingest/auth.js";
import { listenOn } from "../ingest/listen.js";
import { MonitorCollector } from "../monitor/index.js";
import { DashboardAccess, isLoopback } from "./access.js";
import { buildDashboardServer } from "./server.js";

export interface DashboardHandle {
  /** null when the config has no dashboard: section */
  readonly url: string | null;
  readonly app: FastifyInstance | null;
  stop(): Promise<void>;
}

export interface StartDashboardOptions {
  readonly logger?: Logger | undefined;
  /** for the tokens (dashboard.tokens_env); process.env by default */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The dashboard's tokens, or a TokenError naming what to set (what `relayer start` and `check` require); [] without a dashboard. */
export function dashboardTokens(config: RelayerConfig, env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const dashboard = config.dashboard;
  if (dashboard === undefined) return [];
  const tokens = collectTokens({ tokens: [], tokensEnv: dashboard.tokensEnv }, env);
  if (dashboard.allowRemote && tokens.length === 0) {
    throw new TokenError(
      `dashboard.allow_remote is true but no token is set: set ${dashboard.tokensEnv}=<token> (e.g. $(openssl rand -hex 32)), or set allow_remote: false in ${config.files[0]}`,
    );
  }
  return tokens;
}

export async function startDashboard(config: RelayerConfig, options: StartDashboardOptions = {}): Promise<DashboardHandle> {
  const dashboard = config.dashboard;
  if (dashboard === undefined) return { url: null, app: null, stop: async () => {} };
  const logger = options.logger;
  const tokens = dashboardTokens(config, options.env ?? process.env);
  const access = new DashboardAccess({ allowRemote: dashboard.allowRemote, tokens, tokensEnv: dashboard.tokensEnv });
  const collector = await MonitorCollector.open(config, { windowMs: dashboard.sinceMs, minIntervalMs: dashboard.refreshMs, logger });
  try {
    const app = await buildDashboardServer({ collector, access, dashboard, logger });
    const url = await listenOn(app, { host: dashboard.host, port: dashboard.port, portKey: "dashboard.port", hostKey: "dashboard.host", file: config.files[0] }).catch(
      async (error: unknown) => {
        await app.close();
        throw error;
      },
    );
    if (!dashboard.allowRemote && !isLoopback(dashboard.host) && dashboard.host !== "localhost") {
      logger?.warn({ host: dashboard.host }, "the dashboard listens beyond loopback but answers loopback clients only (dashboard.allow_remote: false)");
    }
    logger?.info({ url, allowRemote: dashboard.allowRemote, tokenRequired: access.tokenRequired }, "dashboard listening");
    let stopping: Promise<void> | undefined;
    return {
      url,
      app,
      stop: () =>
        (stopping ??= (async () => {
          await app.close();
          await collector.close();
        })()),
    };
  } catch (error) {
    await collector.close();
    throw error;
  }
}
