/**
 * What the stages of one process share for operations: one Prometheus registry (every stage defines its metrics in
 * its own folder, on this registry: relayer/ingest/metrics.ts, relayer/batcher/metrics.ts, ...), the lease gauge
 * every single-per-chain stage reports into, Node's process metrics once, and the per-stage readiness behind
 * /readyz. Served at /metrics and /readyz by ingest's server when ingest runs in the process, else by the small
 * listener of ./listener.ts (`metrics.listen`).
 */
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";

import { ProcessReadiness } from "./readiness.js";

export interface ProcessTelemetryOptions {
  /** collect Node process metrics (agentgpt_process_*, agentgpt_nodejs_*; default true) */
  readonly defaultMetrics?: boolean;
}

interface LeaseEntry {
  readonly stage: string;
  readonly chain: string;
  readonly held: () => boolean;
}

export class ProcessTelemetry {
  readonly registry = new Registry();
  readonly readiness = new ProcessReadiness();
  private readonly leases = new Set<LeaseEntry>();

  constructor(options: ProcessTelemetryOptions = {}) {
    const leases = this.leases;
    new Gauge({
      name: "agentgpt_lease_held",
      help: "1 when this process holds the lease of the stage on the chain (it is the active one), 0 when it stands by",
      labelNames: ["stage", "chain"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const lease of leases) this.set({ stage: lease.stage, chain: lease.chain }, lease.held() ? 1 : 0);
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "agentgpt_" });
  }

  /**
   * Reports the lease of a single-per-chain stage (`held` read at scrape time) in `agentgpt_lease_held`; returns
   * its removal (when the stage stops).
   */
  registerLease(stage: string, chain: string, held: () => boolean): () => void {
    const entry: LeaseEntry = { stage, chain, held };
    this.leases.add(entry);
    return () => this.leases.delete(entry);
  }

  /** The Prometheus text exposition of every metric of the process. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

const perRegistry = new WeakMap<Registry, Map<string, unknown>>();

/**
 * The one instance of a stage's metrics on `registry` (prom-client refuses a metric name twice on one registry):
 * made by `make` on first use, shared by every chain and every start of that stage in the process.
 */
export function metricsOnce<T>(registry: Registry, name: string, make: () => T): T {
  let instances = perRegistry.get(registry);
  if (instances === undefined) perRegistry.set(registry, (instances = new Map()));
  if (!instances.has(name)) instances.set(name, make());
  return instances.get(name) as T;
}
