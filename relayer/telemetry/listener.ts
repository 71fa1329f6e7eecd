/**
 * The metrics and health listener of a process in which ingest's server does not run (ingest's server serves the
 * same routes, ./routes.ts): GET /metrics, /readyz, /healthz on `metrics.listen` (default 127.0.0.1:9464).
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";

import { DEFAULT_METRICS_LISTEN, type RelayerConfig } from "../config/index.js";
import { ListenError, listenOn } from "../ingest/listen.js";
import type { ProcessTelemetry } from "./process-telemetry.js";
import { addOperationsRoutes } from "./routes.js";

export interface TelemetryListener {
  /** e.g. http://127.0.0.1:9464 */
  readonly url: string;
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

/** Whether this process needs the listener: `metrics.listen` is set, or ingest's server does not run here. */
export function needsTelemetryListener(config: RelayerConfig, ingestRuns: boolean): boolean {
  return config.metrics.listen !== undefined || !ingestRuns;
}

export async function startTelemetryListener(config: RelayerConfig, telemetry: ProcessTelemetry, logger?: Logger): Promise<TelemetryListener> {
  const target = config.metrics.listen ?? DEFAULT_METRICS_LISTEN;
  const app = Fastify({ forceCloseConnections: true, return503OnClosing: true });
  addOperationsRoutes(app, telemetry);
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: "not_found", reason: `no ${request.method} ${request.url}; this listener serves GET /metrics, /readyz and /healthz` }),
  );
  const url = await listenOn(app, { host: target.host, port: target.port, portKey: "metrics.listen", hostKey: "metrics.listen", file: config.files[0] }).catch(
    async (error: unknown) => {
      await app.close();
      throw error;
    },
  );
  logger?.info({ url, stages: telemetry.readiness.stages() }, "metrics and health listening (GET /metrics, /readyz, /healthz)");
  return { url, app, stop: () => app.close() };
}

/**
 * What `relayer start` runs after its stages: the listener when this process needs one (needsTelemetryListener).
 * An explicit `metrics.listen` that cannot listen stops the start (ListenError, with the fix); the default address
 * in use (several processes without ingest on one host) only warns: the stages run, without /metrics here, and the
 * warning says to give each process its own metrics.listen. Null when no listener runs.
 */
export async function serveOperations(
  config: RelayerConfig,
  telemetry: ProcessTelemetry,
  options: { readonly ingestRuns: boolean; readonly logger?: Logger },
): Promise<TelemetryListener | null> {
  if (!needsTelemetryListener(config, options.ingestRuns)) return null;
  try {
    return await startTelemetryListener(config, telemetry, options.logger);
  } catch (error) {
    if (config.metrics.listen !== undefined || !(error instanceof ListenError) || error.code !== "PORT_IN_USE") throw error;
    options.logger?.warn(
      { listen: `${DEFAULT_METRICS_LISTEN.host}:${DEFAULT_METRICS_LISTEN.port}` },
      "no /metrics or /readyz in this process: the default metrics address is in use (another relayer process on this host?); set metrics.listen to a free host:port for each process",
    );
    return null;
  }
}
