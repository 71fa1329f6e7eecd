/**
 * The batcher and settler of one chain in this process, wired as `relayer start` wires them, for tests that drive
 * them directly against a `hardhat node` and Redis.
 */
import { Wallet } from "ethers";
import type { Redis } from "ioredis";

import type { Archive } from "../../relayer/batcher/archive.js";
import { LocalArchive } from "../../relayer/batcher/local-archive.js";
import { BatchPool } from "../../relayer/batcher/batch-pool.js";
import { Batcher, type BatcherOptions } from "../../relayer/batcher/batcher.js";
import { OnchainRegistry } from "../../relayer/batcher/onchain-registry.js";
import type { Receipt } from "../../relayer/queue/index.js";
import { RpcPool, type RpcPoolOptions } from "../../relayer/settler/rpc-pool.js";
import { SettlementStore, type SettlementRecord } from "../../relayer/settler/settlement-store.js";
import { Settler, type SettlerOptions } from "../../relayer/settler/settler.js";
import type { ChainSuite } from "./chain-suite.js";

/** AutoPayLLM's default usageBucket (seconds), which deployChainSuite keeps. */
export const DEFAULT_USAGE_BUCKET = 3600;

export interface PipelineOptions {
  suite: ChainSuite;
  rpcUrls: string[];
  redis: Redis;
  prefix: string;
  archiveDir: string;
  /** another archive (a bucket) instead of the folder archiveDir */
  archive?: Archive;
  chain?: string;
  rpc?: RpcPoolOptions;
  settler?: Partial<SettlerOptions>;
  /** batcher options beyond the ones set here (events) */
  batcher?: Pick<BatcherOptions, "events">;
  maxReceipts?: number;
  /** the usage bucket (s) the batcher cuts at; default: read from the router */
  usageBucket?: number;
}

export interface Pipeline {
  chain: string;
  rpc: RpcPool;
  archive: Archive;
  store: SettlementStore;
  pool: BatchPool;
  settler: Settler;
  batcher: Batcher;
}

/**
 * Builds the pipeline. `relayer start` reads the usage bucket from the router (readUsageBucket); here it is the
 * contract's default unless given, so callers stay synchronous (the batcher tests check the chain's value).
 */
export function pipeline(options: PipelineOptions): Pipeline {
  const { suite, redis, prefix } = options;
  const chain = options.chain ?? "local";
  const rpc = new RpcPool(options.rpcUrls, options.rpc ?? { timeoutMs: 5000 });
  const archive = options.archive ?? new LocalArchive(options.archiveDir);
  const store = new SettlementStore(redis, prefix, chain);
  const settler = new Settler({
    store,
    rpc,
    archive,
    chainId: suite.chainId,
    router: suite.routerAddress,
    wallet: new Wallet(suite.relayerKey),
    fees: { maxFeePerGas: 500n * 10n ** 9n, minPriorityFeePerGas: 10n ** 9n, bumpPercent: 10 },
    confirmations: 1,
    replacement: "bump",
    pollMs: 50,
    ...options.settler,
  });
  const registry = new OnchainRegistry(rpc, suite.routerAddress);
  const pool = new BatchPool(redis, { prefix, chain });
  const batcher = new Batcher({
    chain,
    pool,
    archive,
    sink: settler,
    usageBucket: options.usageBucket ?? DEFAULT_USAGE_BUCKET,
    context: async (receipts) => ({ chain, chainId: suite.chainId, router: suite.routerAddress, registry: await registry.resolve(receipts) }),
    maxReceipts: options.maxReceipts ?? 10_000,
    maxWaitMs: 0,
    ...options.batcher,
  });
  return { chain, rpc, archive, store, pool, settler, batcher };
}

/** Seals whatever the pool holds now (every receipt is due: maxWaitMs is 0). */
export async function sealNow(p: Pipeline): Promise<void> {
  await p.batcher.tick(Date.now() + 1);
}

/** Runs settler passes in this process until nothing is active (or `until` says done). */
export async function settleAll(p: Pipeline, until?: () => Promise<boolean>, maxPasses = 100): Promise<void> {
  await p.settler.lease.acquire();
  (p.settler as unknown as { running: boolean }).running = true;
  for (let i = 0; i < maxPasses; i++) {
    if (until ? await until() : (await p.store.active()).length === 0) return;
    await p.settler.pass();
  }
  const active = (await p.store.active()).map((r) => [r.batchId.slice(0, 10), r.state, r.note]);
  throw new Error(`not done after ${maxPasses} settler passes: ${JSON.stringify(active)}`);
}

/** Takes `receipts` (calls of one usage bucket), seals them as one batch and settles it; returns the settler's final record. */
export async function settleReceipts(p: Pipeline, receipts: readonly Receipt[]): Promise<SettlementRecord> {
  const before = new Set(await p.store.finalIds());
  await p.batcher.take(receipts.map((r) => ({ ...r, chain: p.chain })));
  await sealNow(p);
  try {
    await settleAll(p);
  } finally {
    await p.settler.lease.release(); // the next pipeline on this chain and prefix may take over at once
  }
  const settled = (await p.store.finalIds()).filter((id) => !before.has(id));
  if (settled.length !== 1) throw new Error(`expected one settled batch, got ${settled.length}`);
  return (await p.store.get(settled[0]!))!;
}
