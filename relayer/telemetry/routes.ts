/**
 * The operations routes, the same on ingest's server and on the metrics listener:
 *   GET /healthz   liveness: the process answers (reads nothing)
 *   GET /readyz    per-stage readiness: 200 `{ status: "ready", stages }`, or 503
 *                  `{ error: "not_ready", reason, stages }` where reason lists each failed check with its fix
 *   GET /metrics   Prometheus text exposition of every stage of the process
 */
import type { FastifyInstance } from "fastify";

import type { ProcessTelemetry } from "./process-telemetry.js";

export interface OperationsRoutesOptions {
  /** timeout of each readiness check, ms (default 2000) */
  readonly checkTimeoutMs?: number;
}

export function addOperationsRoutes(app: FastifyInstance, telemetry: ProcessTelemetry, options: OperationsRoutesOptions = {}): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const report = await telemetry.readiness.report(options.checkTimeoutMs ?? 2000);
    if (!report.ready) return reply.code(503).send({ error: "not_ready", reason: report.failures.join("; "), stages: report.stages });
    return { status: "ready", stages: report.stages };
  });
  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await telemetry.exposition();
    reply.header("Content-Type", contentType);
    return body;
  });
}
