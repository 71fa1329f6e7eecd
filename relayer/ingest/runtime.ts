/**
 * Ingest as a running service, built from the configuration: Redis connection, receipt queues (one per chain),
 * pricing, the HTTP server and the recovery sweeper. `stop()` shuts down gracefully: stop accepting, finish the
 * POSTs in flight (each either recorded and acknowledged, or not acknowledged), stop the sweeper, close Redis.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";

import type { RelayerConfig } from "../config/index.js";
import { connectRedis, createProducerRedis, evictionProblem, isClusterTarget, ReceiptQueue, type RedisClient, RedisSettingsError } from "../queue/index.js";
import { BearerAuth, collectTokens, TokenError } from "./auth.js";
import { SubmissionBuilder } from "./build-submission.js";
import { IngestService } from "./ingest-service.js";
import { type BatchParser, createBatchParser } from "./parse-pool.js";
import { IngestMetrics } from "./metrics.js";
import { failed, ok } from "../telemetry/readiness.js";
import type { ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { listenOn } from "./listen.js";
import { buildIngestServer } from "./server.js";

export interface IngestRuntime {
  readonly app: FastifyInstance;
  readonly queue: ReceiptQueue;
  readonly redis: RedisClient;
  readonly metrics: IngestMetrics;
  /** e.g. http://127.0.0.1:8787 */
  readonly url: string;
  stop(): Promise<void>;
}

export interface StartIngestOptions {
  readonly logger?: Logger;
  /** for tokens (server.tokens_env); process.env by default */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** override server.host / server.port */
  readonly host?: string;
  readonly port?: number;
  /** run the recovery sweeper (default true) */
  readonly sweep?: boolean;
  /** collect Node process metrics (default true) */
  readonly defaultMetrics?: boolean;
  /** override server.parse_workers */
  readonly parseWorkers?: number;
  /** problems other stages raise, reported by /readyz */
  readonly readiness?: { problems(): string[] };
  /**
   * the process's registry and per-stage readiness (relayer/telemetry): ingest's metrics go on its registry, its
   * Redis check into its readiness, and the server's /metrics and /readyz answer for every stage of the process
   */
  readonly telemetry?: ProcessTelemetry;
}

/** Every chain a receipt can be queued for: configured chains, payment channels and the default chain. */
export function receiptChains(config: RelayerConfig, builder: SubmissionBuilder): string[] {
  return [...new Set([...config.chains.map((chain) => chain.name), ...builder.chains])];
}

/** The queue and pricing without the HTTP server (for re-pricing and inspection commands). */
export async function openReceiptQueue(
  config: RelayerConfig,
  logger?: Logger,
  options: { readonly refuseEviction?: boolean } = {},
): Promise<{ queue: ReceiptQueue; redis: RedisClient; builder: SubmissionBuilder; close(): Promise<void> }> {
  const builder = SubmissionBuilder.fromConfig(config);
  const redis = createProducerRedis(config.redis, { commandTimeoutMs: config.redis.commandTimeoutMs, ...(logger === undefined ? {} : { logger }) });
  await connectRedis(redis, config.redis);
  if (options.refuseEviction === true) {
    // an eviction policy would drop dedupe records (a call billed twice) or chunks (receipts lost): refused before
    // anything is written
    const eviction = await evictionProblem(redis).catch((error: unknown) => {
      redis.disconnect();
      throw error;
    });
    if (eviction !== null) {
      redis.disconnect();
      throw new RedisSettingsError(eviction);
    }
  }
  const queue = new ReceiptQueue({
    connection: redis,
    prefix: config.redis.prefix,
    shards: isClusterTarget(config.redis) ? config.redis.shards : null,
    chains: receiptChains(config, builder),
    dedupeTtlMs: config.ingest.dedupeTtlMs,
    maxChunk: config.ingest.maxChunk,
    waitReplicas: config.redis.waitReplicas,
    waitTimeoutMs: config.redis.waitTimeoutMs,
    ...(logger === undefined ? {} : { logger }),
  });
  try {
    // a process configured with another redis.shards than the keys were written with refuses to start
    await queue.store.checkLayout();
  } catch (error) {
    await queue.close();
    redis.disconnect();
    throw error;
  }
  return {
    queue,
    redis,
    builder,
    close: async () => {
      await queue.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** The bearer tokens LiteLLM may send, or a TokenError naming what to set (what `relayer start` and `check` require). */
export function ingestTokens(config: RelayerConfig, env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const tokens = collectTokens(config.server, env);
  if (tokens.length === 0) {
    throw new TokenError(
      `no bearer token is configured: set ${config.server.tokensEnv}=<token>[,<token>...] (e.g. $(openssl rand -hex 32)) or server.tokens in ${config.files[0]}`,
    );
  }
  return tokens;
}

export async function startIngest(config: RelayerConfig, options: StartIngestOptions = {}): Promise<IngestRuntime> {
  const logger = options.logger;
  const tokens = ingestTokens(config, options.env ?? process.env);
  const auth = new BearerAuth(tokens);
  const { queue, redis, close } = await openReceiptQueue(config, logger, { refuseEviction: true });
  let parser: BatchParser | undefined;
  let removeCheck: (() => void) | undefined;
  try {
    const telemetry = options.telemetry;
    const metrics = new IngestMetrics({
      queue,
      // Node's process metrics are the telemetry's (once per process) when it is given
      defaultMetrics: telemetry === undefined && (options.defaultMetrics ?? true),
      ...(telemetry === undefined ? {} : { registry: telemetry.registry }),
    });
    // an eviction policy set while running is reported on /readyz (openReceiptQueue refused one at start)
    removeCheck = telemetry?.readiness.add("ingest", "redis", async () => {
      await queue.ping(1000);
      const problem = await evictionProblem(redis);
      return problem === null ? ok() : failed(problem);
    });
    parser = await createBatchParser(config, options.parseWorkers ?? config.server.parseWorkers);
    const service = new IngestService({ parser, sink: queue, metrics, ...(logger === undefined ? {} : { logger }) });
    const app = await buildIngestServer({ service, auth, sink: queue, metrics, bodyLimit: config.server.bodyLimit, ...(logger === undefined ? {} : { logger }), ...(options.readiness === undefined ? {} : { readiness: options.readiness }), ...(telemetry === undefined ? {} : { telemetry }) });
    const url = await listenOn(app, {
      host: options.host ?? config.server.host,
      port: options.port ?? config.server.port,
      portKey: "server.port",
      hostKey: "server.host",
      file: config.files[0],
      override: "--port",
    }).catch(async (error: unknown) => {
      await app.close();
      throw error;
    });
    const stopSweeper = options.sweep === false ? async () => {} : queue.startSweeper({ intervalMs: config.ingest.sweepIntervalMs, graceMs: config.ingest.sweepGraceMs });
    if ((await queue.persistence()) === "off" && config.redis.waitReplicas === 0) {
      logger?.warn(
        "Redis runs without AOF persistence (appendonly no) and redis.wait_replicas is 0: receipts acknowledged to LiteLLM " +
          "are lost if Redis restarts; enable appendonly (appendfsync everysec or always) or wait for replicas",
      );
    }
    logger?.info({ url, chains: queue.chains, tokens: tokens.length }, "ingest listening");
    let stopping: Promise<void> | undefined;
    return {
      app,
      queue,
      redis,
      metrics,
      url,
      stop: () =>
        (stopping ??= (async () => {
          await app.close();
          removeCheck?.();
          await stopSweeper();
          await parser?.close();
          await close();
          logger?.info("ingest stopped");
        })()),
    };
  } catch (error) {
    removeCheck?.();
    await parser?.close();
    await close();
    throw error;
  }
}
