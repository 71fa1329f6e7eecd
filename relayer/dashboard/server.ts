/**
 * The dashboard's HTTP server (fastify), read-only:
 *   GET /                        the page (static HTML; its script fetches /api/report)
 *   GET /assets/app.js|app.css   the page's script and style
 *   GET /assets/chart.umd.min.js Chart.js, served from node_modules (the page loads nothing from the internet)
 *   GET /api/report              the monitor's report as JSON: ?granularity=provider|model|user|route, ?user=0x…
 *   GET /api/health              {status, snapshotAt}
 * Every request passes access.ts first (loopback, token). Every error answer is JSON `{ error, reason }`. Other
 * methods get 405: nothing here changes anything. Request logging is off (URLs may carry `?token=`).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";

import type { DashboardConfig } from "../config/index.js";
import { buildReport, GRANULARITIES, jsonWithBigints, MonitorError, parseGranularity, parseUser, type MonitorCollector } from "../monitor/index.js";
import { COOKIE_NAME, DashboardAccess } from "./access.js";
import { linksFor } from "./links.js";

export interface DashboardServerOptions {
  readonly collector: Pick<MonitorCollector, "snapshot" | "payerBudgets" | "latest">;
  readonly access: DashboardAccess;
  readonly dashboard: DashboardConfig;
  readonly logger?: Logger | undefined;
}

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const STATIC_DIR = join(dirname(fileURLToPath(import.meta.url)), "static");

/** Chart.js's UMD build, found through the package's own entry point. */
export function chartLibraryPath(): string {
  const entry = createRequire(import.meta.url).resolve("chart.js"); // node_modules/chart.js/dist/chart.cjs
  return join(dirname(entry), "chart.umd.min.js");
}

function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  assets.set("/", { type: "text/html; charset=utf-8", body: readFileSync(join(STATIC_DIR, "index.html")) });
  assets.set("/assets/app.js", { type: "text/javascript; charset=utf-8", body: readFileSync(join(STATIC_DIR, "app.js")) });
  assets.set("/assets/app.css", { type: "text/css; charset=utf-8", body: readFileSync(join(STATIC_DIR, "app.css")) });
  assets.set("/assets/chart.umd.min.js", { type: "text/javascript; charset=utf-8", body: readFileSync(chartLibraryPath()) });
  return assets;
}

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

export async function buildDashboardServer(options: DashboardServerOptions): Promise<FastifyInstance> {
  const { collector, access, dashboard, logger } = options;
  const assets = loadAssets();
  const app = Fastify({
    ...(logger === undefined ? {} : { loggerInstance: logger }),
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
  });

  app.addHook("onRequest", async (request, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    const decision = access.decide({
      remoteAddress: request.raw.socket.remoteAddress,
      authorization: request.headers.authorization,
      cookie: request.headers.cookie,
      host: request.headers.host,
    });
    if (decision.ok) return;
    // A browser opening /?token=… from an allowed address: keep the token in an HttpOnly cookie, drop it from the URL.
    const token = (request.query as Record<string, unknown> | undefined)?.["token"];
    if (decision.status === 401 && request.method === "GET" && request.url.split("?")[0] === "/" && typeof token === "string" && access.checkToken(token)) {
      reply.header("set-cookie", `${COOKIE_NAME}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
      return reply.code(303).header("location", "/").send();
    }
    if (decision.status === 401) reply.header("www-authenticate", 'Bearer realm="agentgpt-dashboard"');
    return reply.code(decision.status).send({ error: decision.error, reason: decision.reason });
  });

  app.setNotFoundHandler((request, reply) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return reply.code(405).header("allow", "GET, HEAD").send({ error: "method_not_allowed", reason: "the dashboard is read-only: GET only" });
    }
    return reply.code(404).send({ error: "not_found", reason: `no ${request.url}; the page is at /, its data at /api/report` });
  });

  app.setErrorHandler((error: Error, request, reply) => {
    if (error instanceof MonitorError && error.code === "INVALID_INPUT") return reply.code(400).send({ error: "bad_request", reason: error.message });
    request.log.error({ err: { name: error.name, message: error.message } }, "dashboard: unexpected error");
    return reply.code(503).send({ error: "unavailable", reason: `the figures could not be read now (${error.message}); the page retries` });
  });

  for (const [path, asset] of assets) {
    app.get(path, async (_request, reply) => reply.type(asset.type).send(asset.body));
  }

  app.get("/api/health", async () => {
    const latest = collector.latest;
    return { status: "ok", snapshotAt: latest === null ? null : new Date(latest.takenAt).toISOString() };
  });

  app.get("/api/report", async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const granularity = parseGranularity(typeof query["granularity"] === "string" ? query["granularity"] : "provider", "granularity");
    const user = typeof query["user"] === "string" && query["user"] !== "" ? parseUser(query["user"], "user") : undefined;
    const snapshot = await collector.snapshot();
    const payerBudgets = user === undefined ? undefined : await collector.payerBudgets(user);
    const report = buildReport(snapshot, { granularity, user, payerBudgets, recentBatches: dashboard.recentBatches });
    const body = { report, links: linksFor(dashboard, report.chains), refreshMs: dashboard.refreshMs, granularities: GRANULARITIES };
    return reply.type("application/json; charset=utf-8").send(jsonWithBigints(body));
  });

  return app as unknown as FastifyInstance;
}
