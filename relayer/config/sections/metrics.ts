/**
 * `metrics:` where a process serves its Prometheus metrics and health when ingest's server does not run in it.
 * Ingest's server always serves GET /metrics, /readyz and /healthz of the whole process; a process without ingest
 * (one running only settlement stages, say) serves the same routes on this listener, at 127.0.0.1:9464 unless set.
 * With `listen:` set the listener runs in every process, ingest or not (a fixed scrape port per host).
 *
 * ```yaml
 * metrics:
 *   listen: 127.0.0.1:9464     # host:port ([::1]:9464 for IPv6); port 0 picks a free one
 *   default_metrics: true      # Node process metrics (agentgpt_process_*, agentgpt_nodejs_*; default true)
 * ```
 */
import { z } from "zod";

export interface MetricsConfig {
  /** absent: a listener only in processes without ingest, on DEFAULT_METRICS_LISTEN */
  readonly listen?: { readonly host: string; readonly port: number } | undefined;
  readonly defaultMetrics: boolean;
}

export const DEFAULT_METRICS_LISTEN = { host: "127.0.0.1", port: 9464 } as const;

const listenAddress = () =>
  z.unknown().transform((value, ctx) => {
    const match = typeof value === "string" ? /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim()) : null;
    const port = match === null ? NaN : Number(match[3]);
    if (match === null || port > 65_535) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not host:port; write e.g. "127.0.0.1:9464" (or "[::1]:9464")`, input: value });
      return z.NEVER;
    }
    return { host: (match[1] ?? match[2])!, port };
  });

export const metricsSection = () =>
  z
    .strictObject({
      listen: listenAddress().optional(),
      default_metrics: z.boolean().default(true),
    })
    .prefault({})
    .transform((m): MetricsConfig => ({ listen: m.listen, defaultMetrics: m.default_metrics }));
