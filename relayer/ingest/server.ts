/**
 * The ingest HTTP server (fastify):
 *   POST /litellm/spend   LiteLLM's generic API logger (json_array, ndjson or single); bearer token required
 *   GET  /healthz         the process is up
 *   GET  /readyz          Redis answers and no stage of the process reports a problem (503 with the reason when not);
 *                         with `telemetry`, every check of every stage of the process, per stage (relayer/telemetry)
 *   GET  /metrics         Prometheus (with `telemetry`: every stage's metrics)
 * Every error answer is JSON `{ error, reason }` where `reason` says what to do.
 */
import type { IncomingMessage } from "node:http";

import Fastify, { errorCodes, type FastifyError, type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";

import type { BearerAuth } from "./auth.js";
import type { IngestService, ReceiptSink } from "./ingest-service.js";
import type { IngestMetrics } from "./metrics.js";
import type { ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { addOperationsRoutes } from "../telemetry/routes.js";

export const SPEND_PATH = "/litellm/spend";

export interface IngestServerOptions {
  readonly service: IngestService;
  readonly auth: BearerAuth;
  /** checked by /readyz */
  readonly sink: Pick<ReceiptSink, "ping">;
  readonly metrics: IngestMetrics;
  /** largest body accepted, bytes (server.body_limit) */
  readonly bodyLimit: number;
  readonly logger?: Logger;
  /** /readyz PING timeout, ms (default 1000) */
  readonly readyTimeoutMs?: number;
  /** problems other stages raise (a settler whose chain was reset): /readyz is 503 while any is raised */
  readonly readiness?: { problems(): string[] };
  /** the process's registry and per-stage readiness: /metrics and /readyz answer for every stage (relayer/telemetry) */
  readonly telemetry?: ProcessTelemetry;
}

const BODY_TYPES = ["application/json", "application/x-ndjson", "application/ndjson", "text/plain"];

export async function buildIngestServer(options: IngestServerOptions): Promise<FastifyInstance> {
  const { service, auth, metrics, logger } = options;
  const app = Fastify({
    ...(logger === undefined ? {} : { loggerInstance: logger }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: "idle",
  });

  // LiteLLM sends every format as application/json, NDJSON included: keep the raw bytes (in the chunks they
  // arrived in, copied once into a parse worker's shared memory) and split them ourselves.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(BODY_TYPES, (request, payload, done) => readChunks(request.raw, payload, options.bodyLimit, done));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.code(413).send({
        error: "body_too_large",
        reason: `the body is larger than ${options.bodyLimit} bytes (server.body_limit): lower LiteLLM's batch_size or raise server.body_limit`,
      });
    }
    if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply.code(415).send({
        error: "unsupported_media_type",
        reason: `send the logs as application/json (got ${request.headers["content-type"] ?? "no Content-Type"})`,
      });
    }
    if (status >= 400 && status < 500) return reply.code(status).send({ error: "bad_request", reason: error.message });
    request.log.error({ err: { name: error.name, code: error.code, message: error.message, stack: error.stack } }, "unexpected error");
    return reply.code(500).send({ error: "internal_error", reason: "unexpected error; the POST was not recorded, send it again" });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: "not_found", reason: `no ${request.method} ${request.url}; LiteLLM posts to ${SPEND_PATH}` }),
  );

  app.post(
    SPEND_PATH,
    {
      onRequest: async (request, reply) => {
        if (!auth.check(request.headers.authorization)) {
          reply.header("WWW-Authenticate", 'Bearer realm="agentgpt-ingest"');
          return reply.code(401).send({
            error: "unauthorized",
            reason: "missing or wrong bearer token: send Authorization: Bearer <token> with a token from server.tokens or AGENTGPT_INGEST_TOKENS",
          });
        }
      },
      onResponse: async (_request, reply) => {
        metrics.requests.inc({ code: String(reply.statusCode) });
        if (reply.statusCode === 200) metrics.ackSeconds.observe(reply.elapsedTime / 1000);
      },
    },
    async (request, reply) => {
      const body = Array.isArray(request.body) ? (request.body as Buffer[]) : [];
      const result = await service.ingest(body);
      if (result.status === 503) reply.header("Retry-After", "5");
      return reply.code(result.status).send(result.body);
    },
  );

  if (options.telemetry !== undefined) {
    addOperationsRoutes(app as unknown as FastifyInstance, options.telemetry);
    return app as unknown as FastifyInstance;
  }

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    try {
      await options.sink.ping(options.readyTimeoutMs ?? 1000);
    } catch (error) {
      return reply.code(503).send({ error: "not_ready", reason: (error as Error).message });
    }
    const problems = options.readiness?.problems() ?? [];
    if (problems.length > 0) return reply.code(503).send({ error: "not_ready", reason: problems.join("; ") });
    return { status: "ready" };
  });

  app.get("/metrics", async (_request, reply) => {
    reply.header("Content-Type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // The logger type parameter differs (pino's Logger vs FastifyBaseLogger); callers only need the base API.
  return app as unknown as FastifyInstance;
}

/** Reads a request body as its chunks, refusing it (413) past `limit` bytes, declared or received. */
function readChunks(
  raw: IncomingMessage,
  payload: NodeJS.ReadableStream,
  limit: number,
  done: (error: Error | null, body?: Buffer[]) => void,
): void {
  const declared = Number(raw.headers["content-length"]);
  if (declared > limit) {
    done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (error: Error | null, body?: Buffer[]) => {
    if (finished) return;
    finished = true;
    payload.removeListener("data", onData);
    payload.removeListener("end", onEnd);
    payload.removeListener("error", onError);
    done(error, body);
  };
  const onData = (chunk: Buffer | string) => {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    received += buffer.length;
    if (received > limit) {
      finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    chunks.push(buffer);
  };
  const onEnd = () => {
    if (!Number.isNaN(declared) && declared !== received) {
      finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    finish(null, chunks);
  };
  const onError = (error: Error) => finish(Object.assign(error, { statusCode: 400 }));
  payload.on("data", onData);
  payload.on("end", onEnd);
  payload.on("error", onError);
}
