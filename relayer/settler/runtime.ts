/**
 * The settlement stages as a running service, built from the configuration: for every chain with RPC URLs, a
 * receipt worker on ingest's queue feeding the batcher, and the settler behind it. `stop()` stops taking chunks,
 * lets the batcher finish the batch it is sealing and the settler its pass, then releases the lease.
 */
import { dirname, isAbsolute, resolve } from "node:path";

import type { Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

import { Archive } from "../batcher/archive.js";
import { BatchPool } from "../batcher/batch-pool.js";
import { Batcher } from "../batcher/batcher.js";
import { OnchainRegistry } from "../batcher/onchain-registry.js";
import { loadDeployment } from "../chain/deployment.js";
import { resolveFees, type ChainConfig, type RelayerConfig } from "../config/index.js";
import { createReceiptWorker, createWorkerRedis } from "../queue/index.js";
import { RpcPool } from "./rpc-pool.js";
import { SettlementStore } from "./settlement-store.js";
import { Settler } from "./settler.js";
import { loadSigningKey, SigningKeyError } from "./signing-key.js";

/** Arbitrum One, Nova and Sepolia: no public mempool, so a stuck transaction is resubmitted, not bumped. */
const ARBITRUM_CHAIN_IDS = new Set([42161, 42170, 421614]);

export interface ChainSettlement {
  readonly chain: string;
  readonly chainId: number;
  readonly router: string;
  readonly signer: string;
  readonly rpc: RpcPool;
  readonly store: SettlementStore;
  readonly pool: BatchPool;
  readonly batcher: Batcher;
  readonly settler: Settler;
}

export interface SettlementRuntime {
  readonly chains: readonly ChainSettlement[];
  readonly archive: Archive;
  stop(): Promise<void>;
}

export interface StartSettlementOptions {
  readonly logger?: Logger;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function archiveDir(config: RelayerConfig): string {
  const dir = config.archive.dir;
  return isAbsolute(dir) ? dir : resolve(dirname(config.files[0] ?? "."), dir);
}

export async function startSettlement(config: RelayerConfig, options: StartSettlementOptions = {}): Promise<SettlementRuntime> {
  const logger = options.logger;
  const archive = new Archive(archiveDir(config));
  const redis: Redis = createWorkerRedis(config.redis.url, { connectionName: "agentgpt-settlement", ...(logger ? { logger } : {}) });
  const chains: ChainSettlement[] = [];
  const workers: Worker[] = [];
  const stopAll = async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    for (const chain of chains) {
      await chain.batcher.stop();
      await chain.settler.stop();
    }
    await redis.quit().catch(() => redis.disconnect());
  };
  try {
    for (const chain of config.chains) {
      if (chain.rpcUrls.length === 0) {
        logger?.warn({ chain: chain.name }, "chain has no rpc_urls: its receipts stay queued until it has some");
        continue;
      }
      if ((chain.signer ?? config.settler.signer) === undefined) {
        logger?.warn(
          { chain: chain.name },
          "no settler signer for this chain (settler.signer or chains.<name>.signer): its receipts stay queued, nothing is settled",
        );
        continue;
      }
      const settlement = await startChain(config, chain, archive, redis, options);
      chains.push(settlement);
      const worker = createReceiptWorker({
        connection: createWorkerRedis(config.redis.url, { connectionName: `agentgpt-batcher-${chain.name}` }),
        prefix: config.redis.prefix,
        chain: chain.name,
        handler: (receipts) => settlement.batcher.take(receipts),
        // take() is atomic and idempotent per receipt, so chunks can be taken in parallel (order does not matter).
        concurrency: 4,
      });
      worker.on("failed", (job, error) => logger?.error({ chain: chain.name, chunk: job?.id, err: error.message }, "receipt chunk not taken; retried"));
      workers.push(worker);
      settlement.settler.start();
      settlement.batcher.start();
      logger?.info(
        { chain: chain.name, chainId: settlement.chainId, router: settlement.router, signer: settlement.signer, rpc: settlement.rpc.health().map((h) => h.endpoint) },
        "settlement started",
      );
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  return { chains, archive, stop: stopAll };
}

async function startChain(
  config: RelayerConfig,
  chain: ChainConfig,
  archive: Archive,
  redis: Redis,
  options: StartSettlementOptions,
): Promise<ChainSettlement> {
  const logger = options.logger?.child({ chain: chain.name });
  const rpc = new RpcPool(chain.rpcUrls, { ...(logger ? { logger } : {}) });
  const chainId = Number(BigInt(await rpc.request<string>("eth_chainId")));
  if (chain.chainId !== undefined && chain.chainId !== chainId) {
    throw new SigningKeyError(`chains.${chain.name}: chain_id is ${chain.chainId} but its RPC serves chain ${chainId}: fix chain_id or rpc_urls`);
  }
  const router = chain.router ?? (await loadDeployment(chainId, { networkName: chain.name })).addresses.autoPayLLM;
  const signerConfig = (chain.signer ?? config.settler.signer)!;
  const key = await loadSigningKey(signerConfig, { ...(options.env ? { env: options.env } : {}), baseDir: dirname(config.files[0] ?? ".") });
  if (key.development) logger?.warn({ source: key.source }, "the settler signs with a raw key from the environment: development only");
  const store = new SettlementStore(redis, config.redis.prefix, chain.name);
  const settler = new Settler({
    store,
    rpc,
    archive,
    chainId,
    router,
    wallet: key.wallet,
    fees: resolveFees(config.settler.fees, chain.fees),
    confirmations: chain.confirmations,
    replacement: chain.replacement ?? (ARBITRUM_CHAIN_IDS.has(chainId) ? "resubmit" : "bump"),
    pollMs: config.settler.pollMs,
    stuckAfterMs: config.settler.stuckAfterMs,
    maxInFlight: config.settler.maxInFlight,
    leaseTtlMs: config.settler.leaseTtlMs,
    ...(logger ? { logger: logger.child({ stage: "settler" }) } : {}),
  });
  const registry = new OnchainRegistry(rpc, router);
  const pool = new BatchPool(redis, { prefix: config.redis.prefix, chain: chain.name });
  const batcher = new Batcher({
    chain: chain.name,
    pool,
    archive,
    sink: settler,
    context: async (receipts) => ({ chain: chain.name, chainId, router, registry: await registry.resolve(receipts) }),
    maxReceipts: config.batcher.maxReceipts,
    maxWaitMs: config.batcher.maxWaitMs,
    ...(logger ? { logger: logger.child({ stage: "batcher" }) } : {}),
  });
  return { chain: chain.name, chainId, router, signer: key.wallet.address, rpc, store, pool, batcher, settler };
}
