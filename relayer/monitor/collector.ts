/**
 * Gathers everything the monitor shows into one Snapshot: per chain, the batches settled in the window (chain
 * events, with each batch's usage lines from the archive), what the relayer still holds (relayer-state.ts) less
 * what the chain has settled already, the model budgets, and where the charged money stands (payouts.ts: escrowed,
 * releasable, released, withdrawn); plus ingest's unbillable counts. Used by
 * `agentgpt monitor litellm` (one snapshot, or one per --watch tick) and by the dashboard (one per refresh,
 * shared by every request). Event logs and batch files are kept between snapshots, so a refresh reads only
 * what is new.
 */
import type { Redis } from "ioredis";
import type { Logger } from "pino";

import { Archive } from "../batcher/archive.js";
import { BatchPool } from "../batcher/batch-pool.js";
import { redactUrls } from "../chain/networks.js";
import type { RelayerConfig, TokenUnit } from "../config/index.js";
import { ReleaseSchedule } from "../payout/release-schedule.js";
import { asRedis, connectRedis, createProducerRedis, isClusterTarget, ReceiptStore, type UnbillableReason } from "../queue/index.js";
import { archiveDir } from "../settler/runtime.js";
import { SettlementStore } from "../settler/settlement-store.js";
import { ArchiveLines } from "./archive-lines.js";
import { readModelBudgets, readPayerBudget, type ModelBudget, type PayerBudget } from "./budgets.js";
import { MonitorError } from "./errors.js";
import { openMonitorChain, type MonitorChain } from "./monitor-chain.js";
import { readPayouts, type PayoutFigures } from "./payouts.js";
import { readRelayerState, type BatchCandidate, type ChainRelayerState } from "./relayer-state.js";
import type { RouterWindow, SettledBatch } from "./router-events.js";
import { receiptLines, type BatchLines, type UsageLine } from "./usage-lines.js";

export interface SettledEntry {
  readonly batch: SettledBatch;
  /** null: the archive has no file for this batch (its amounts are shown unattributed) */
  readonly lines: BatchLines | null;
}

export interface PendingBatch {
  readonly candidate: BatchCandidate;
  readonly lines: BatchLines | null;
}

export interface ChainSnapshot {
  readonly name: string;
  /** null when the chain is not read (no rpc_urls) or could not be read (see error) */
  readonly chainId: number | null;
  readonly router: string | null;
  readonly window: Omit<RouterWindow, "batches" | "withdrawn"> | null;
  readonly settled: readonly SettledEntry[];
  readonly pending: {
    readonly ingest: { readonly chunks: number; readonly chunksRead: number; readonly oldestAt: number | null; readonly lines: readonly UsageLine[] };
    readonly pool: { readonly oldestAt: number | null; readonly lines: readonly UsageLine[] };
    readonly batches: readonly PendingBatch[];
  };
  readonly models: readonly ModelBudget[];
  /** escrowed, releasable, released and withdrawn (null when the chain is not read) */
  readonly payouts: PayoutFigures | null;
  readonly stats: Readonly<Record<string, number>>;
  /** why the chain's settled figures are missing (RPC down, no router...) */
  readonly error: string | null;
  /** true when the chain has no rpc_urls: only what the relayer holds is shown */
  readonly offline: boolean;
}

export interface Snapshot {
  /** epoch ms */
  readonly takenAt: number;
  readonly windowMs: number;
  readonly token: TokenUnit;
  readonly chains: readonly ChainSnapshot[];
  readonly unbillable: Readonly<Record<UnbillableReason, number>>;
}

export interface PayerBudgetOnChain {
  readonly chain: string;
  readonly budget: PayerBudget | null;
  readonly error: string | null;
}

export interface CollectorOptions {
  /** the window of settled batches, ms (e.g. 24h) */
  readonly windowMs: number;
  /** only these chains (default: every chain receipts may settle on) */
  readonly chains?: readonly string[] | undefined;
  /** a snapshot younger than this is returned as is (ms; default 0: always fresh) */
  readonly minIntervalMs?: number;
  /** unacknowledged ingest chunks read per chain (default 2,000) */
  readonly maxChunks?: number;
  readonly logger?: Logger | undefined;
}

interface ChainSlot {
  readonly name: string;
  readonly config: RelayerConfig["chains"][number] | undefined;
  readonly stores: { receipts: ReceiptStore; pool: BatchPool; settlement: SettlementStore; releases: ReleaseSchedule };
  chain: MonitorChain | null;
}

/** Every chain a receipt can be queued for (as ingest computes it): configured chains, payment channels, default. */
export function monitoredChains(config: RelayerConfig): string[] {
  return [...new Set([...config.chains.map((chain) => chain.name), ...config.paymentChannels.map((channel) => channel.chain), config.defaultChain])];
}

export class MonitorCollector {
  private readonly slots: ChainSlot[];
  private readonly lines: ArchiveLines;
  private readonly receipts: ReceiptStore;
  private last: Snapshot | null = null;
  private inFlight: Promise<Snapshot> | null = null;

  private constructor(
    private readonly config: RelayerConfig,
    private readonly redis: Redis,
    private readonly options: CollectorOptions,
  ) {
    this.lines = new ArchiveLines(new Archive(archiveDir(config)));
    this.receipts = new ReceiptStore(redis, {
      prefix: config.redis.prefix,
      dedupeTtlMs: config.ingest.dedupeTtlMs,
      shards: isClusterTarget(config.redis) ? config.redis.shards : null,
    });
    const all = monitoredChains(config);
    for (const name of options.chains ?? []) {
      if (!all.includes(name)) throw new MonitorError("INVALID_INPUT", `--chain ${name}: not a chain of this relayer (${all.join(", ")})`);
    }
    this.slots = all
      .filter((name) => options.chains === undefined || options.chains.length === 0 || options.chains.includes(name))
      .map((name) => ({
        name,
        config: config.chains.find((chain) => chain.name === name),
        stores: {
          receipts: this.receipts,
          pool: new BatchPool(redis, { prefix: config.redis.prefix, chain: name }),
          settlement: new SettlementStore(redis, config.redis.prefix, name),
          releases: new ReleaseSchedule(redis, config.redis.prefix, name),
        },
        chain: null,
      }));
  }

  /** Connects to Redis (QueueUnavailableError when it does not answer); chains are connected at the first snapshot. */
  static async open(config: RelayerConfig, options: CollectorOptions): Promise<MonitorCollector> {
    const redis = createProducerRedis(config.redis, {
      commandTimeoutMs: Math.max(config.redis.commandTimeoutMs, 5000),
      connectionName: "agentgpt-monitor",
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    await connectRedis(redis, config.redis);
    try {
      return new MonitorCollector(config, asRedis(redis), options);
    } catch (error) {
      redis.disconnect();
      throw error;
    }
  }

  get windowMs(): number {
    return this.options.windowMs;
  }

  /** The latest snapshot, taken now unless one younger than minIntervalMs exists; concurrent callers share one. */
  async snapshot(): Promise<Snapshot> {
    if (this.last !== null && Date.now() - this.last.takenAt < (this.options.minIntervalMs ?? 0)) return this.last;
    this.inFlight ??= this.take().finally(() => (this.inFlight = null));
    const snapshot = await this.inFlight;
    this.last = snapshot;
    return snapshot;
  }

  /** The last snapshot taken, if any (the dashboard serves it while a refresh runs). */
  get latest(): Snapshot | null {
    return this.last;
  }

  /** One payer's budget on every chain that is read. */
  async payerBudgets(user: string): Promise<PayerBudgetOnChain[]> {
    const out: PayerBudgetOnChain[] = [];
    for (const slot of this.slots) {
      if (slot.config === undefined || slot.config.rpcUrls.length === 0) continue;
      try {
        const chain = await this.connect(slot);
        out.push({ chain: slot.name, budget: await readPayerBudget(chain.router, chain.routerAddress, chain.token, user), error: null });
      } catch (error) {
        out.push({ chain: slot.name, budget: null, error: describe(error) });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.inFlight?.catch(() => undefined);
    for (const slot of this.slots) slot.chain?.provider.destroy();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async connect(slot: ChainSlot): Promise<MonitorChain> {
    slot.chain ??= await openMonitorChain(slot.config!, this.config.token);
    return slot.chain;
  }

  private async take(): Promise<Snapshot> {
    const takenAt = Date.now();
    const chains: ChainSnapshot[] = [];
    for (const slot of this.slots) chains.push(await this.takeChain(slot));
    const unbillable = await this.receipts.unbillableCounts(takenAt);
    return { takenAt, windowMs: this.options.windowMs, token: this.config.token, chains, unbillable };
  }

  private async takeChain(slot: ChainSlot): Promise<ChainSnapshot> {
    const state: ChainRelayerState = await readRelayerState(slot.name, { redis: this.redis, ...slot.stores }, { maxChunks: this.options.maxChunks ?? 2000 });
    const offline = slot.config === undefined || slot.config.rpcUrls.length === 0;
    let window: RouterWindow | null = null;
    let models: ModelBudget[] = [];
    let payouts: PayoutFigures | null = null;
    let error: string | null = null;
    let chain: MonitorChain | null = null;
    if (!offline) {
      try {
        chain = await this.connect(slot);
        window = await chain.events.read(this.options.windowMs);
        models = await readModelBudgets(chain.router);
        // releasable candidates: the window's unreleased batches, and those the release stage still waits for
        const candidates = [
          ...window.batches.filter((batch) => batch.released === null).map((batch) => ({ batchId: batch.batchId, closesAt: batch.releaseAt })),
          ...(await slot.stores.releases.entries()),
        ];
        payouts = await readPayouts(chain.router, candidates, window.headTime, window.withdrawn);
      } catch (caught) {
        error = describe(caught);
        window = null;
        this.options.logger?.warn({ chain: slot.name, err: error }, "monitor: chain not read");
      }
    }

    const settledIds = new Set(window?.batches.map((batch) => batch.batchId) ?? []);
    const settled: SettledEntry[] = [];
    for (const batch of window?.batches ?? []) settled.push({ batch, lines: await this.lines.get(slot.name, batch.batchId) });

    const batches: PendingBatch[] = [];
    for (const candidate of state.batches) {
      if (settledIds.has(candidate.batchId)) continue;
      // Settled before the window (a settler record waiting for confirmations, say): not pending any more.
      if (chain !== null && error === null && (await chain.router.batchInfo(candidate.batchId)).status !== 0n) continue;
      batches.push({ candidate, lines: await this.lines.get(slot.name, candidate.batchId) });
    }
    this.lines.prune(slot.name, new Set([...settledIds, ...batches.map((batch) => batch.candidate.batchId)]));

    return {
      name: slot.name,
      chainId: chain?.chainId ?? null,
      router: chain?.routerAddress ?? null,
      window: window === null ? null : { head: window.head, headTime: window.headTime, fromBlock: window.fromBlock, fromTime: window.fromTime },
      settled,
      pending: {
        ingest: { chunks: state.ingest.chunks, chunksRead: state.ingest.chunksRead, oldestAt: state.ingest.oldestAt, lines: receiptLines(state.ingest.receipts) },
        pool: { oldestAt: state.pool.oldestAt, lines: receiptLines(state.pool.receipts) },
        batches,
      },
      models,
      payouts,
      stats: state.stats,
      error,
      offline,
    };
  }
}

function describe(error: unknown): string {
  return redactUrls(error instanceof Error ? error.message : String(error));
}
