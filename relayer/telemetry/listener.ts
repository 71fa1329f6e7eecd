/**
 * The metrics and health listener of a process in which ingest's server does not run (ingest's server serves the
 * same routes, ./routes.ts): GET /metrics, /readyz, /healthz on `metrics.listen` (default 127.0.0.1:9464).
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";

import { DEFAULT_METRICS_LISTEN, type RelayerConfig } from "../config/index.js";
import { listenOn } from "../ingest/listen.js";
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
