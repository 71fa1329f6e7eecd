/**
 * The settlement stages as a running service, built from the configuration: for every chain with RPC URLs, a
 * receipt worker on ingest's queue feeding the batcher, the settler behind it, and (unless `payout.enabled` is
 * false) the release stage, whose releases the settler sends with its key (relayer/payout/release-stage.ts).
 *
 * `stages` picks the batcher, the settler (with the release stage), or both (the default). Any number of processes
 * may run either against one Redis: each chain's batcher and settler hold a lease with fencing (lease.ts), so one
 * of each runs per chain and a standby takes over when its holder dies. A batcher without the settler in its
 * process hands batches to the settler's ledger in Redis (SettlementStore.submit), where the settler holding the
 * lease finds them at its next pass; the batch files are read from the archive (`archive.dir`: a folder shared by
 * the processes of one host).
 * `stop()` stops the release stage and taking chunks, lets the batcher finish the batch it is sealing and the
 * settler its pass, then releases the lease.
 * `reloadKeys(config)` (SIGHUP) hands each settler the signing keys of a re-read configuration: the key rotation
 * path (`agentgpt keys rotate`); nothing else is reloaded.
 * With `settler.rotation`, the rotation stage (relayer/rotation) runs here too: the process holding its lease
 * rotates on schedule, and every process's settlers follow the key ring (KeyFollower), so SIGHUP leaves the keys of
 * the chains it rotates alone.
 */
import { dirname } from "node:path";

import type { Worker } from "bullmq";
import { Interface } from "ethers";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

import type { Archive } from "../batcher/archive.js";
import { openArchive, openCheckedArchive } from "../batcher/open-archive.js";
import { BatchPool } from "../batcher/batch-pool.js";
import { Batcher, type BatchSink } from "../batcher/batcher.js";
import { OnchainRegistry } from "../batcher/onchain-registry.js";
import { readUsageBucket } from "../batcher/usage-bucket.js";
import { loadDeployment } from "../chain/deployment.js";
import { RELAYER_ROLE } from "../chain/roles.js";
import { resolveFees, type ChainConfig, type RelayerConfig } from "../config/index.js";
import { ReleaseSchedule } from "../payout/release-schedule.js";
import { ReleaseStage } from "../payout/release-stage.js";
import { asRedis, createReceiptWorker, createWorkerRedis, isClusterTarget, type RedisClient } from "../queue/index.js";
import { ChainError } from "../chain/errors.js";
import { KeyFollower } from "../rotation/key-follower.js";
import { rotatedChains, setupRotation, type RotationSetup } from "../rotation/setup.js";
import { ChainGuard } from "./chain-guard.js";
import { Lease } from "./lease.js";
import { RpcPool } from "./rpc-pool.js";
import { SettlementStore } from "./settlement-store.js";
import { inFlightOn, Settler } from "./settler.js";
import { loadSigningKey, SigningKeyError, type SettlerSigner } from "./signing-key.js";
import { observeChain, type ObservedChain } from "./observe.js";
import type { ProcessTelemetry } from "../telemetry/process-telemetry.js";

/** Arbitrum One, Nova and Sepolia: no public mempool, so a stuck transaction is resubmitted, not bumped. */
const ARBITRUM_CHAIN_IDS = new Set([42161, 42170, 421614]);

export interface ChainSettlement {
  readonly chain: string;
  readonly chainId: number;
  readonly router: string;
  /** the settler's active key; null when this process runs no settler */
  readonly signer: string | null;
  readonly rpc: RpcPool;
  readonly store: SettlementStore;
  readonly pool: BatchPool;
  /** null when this process runs no batcher */
  readonly batcher: Batcher | null;
  /** null when this process runs no settler */
  readonly settler: Settler | null;
  /** null when `payout.enabled` is false or this process runs no settler */
  readonly release: ReleaseStage | null;
  /** its metrics and readiness checks, when started with `telemetry` */
  readonly observed?: ObservedChain;
}

/** Which settlement stages a process runs (default: both). */
export interface SettlementStages {
  readonly batcher: boolean;
  readonly settler: boolean;
}

export interface SettlementRuntime {
  readonly chains: readonly ChainSettlement[];
  readonly archive: Archive;
  stop(): Promise<void>;
  /**
   * Loads the signing keys `config` names for each running chain and hands them to its settler, between passes.
   * A new active key without RELAYER_ROLE on the router is refused (the settler keeps its keys, and says why), so a
   * premature switch cannot stop settlement. Other settings are not reloaded: they need a restart. Returns what
   * happened on each chain: a failure there means that chain's settler kept its current keys.
   */
  reloadKeys(config: RelayerConfig): Promise<KeyReload[]>;
}

/** The outcome of a key reload on one chain. */
export type KeyReload =
  | { readonly chain: string; readonly ok: true; readonly active: string; readonly retiring: readonly string[] }
  | { readonly chain: string; readonly ok: false; /** why the current keys were kept, with the fix */ readonly reason: string; readonly active: string };

export interface StartSettlementOptions {
  readonly logger?: Logger;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** told when a chain stops being the one its settler started on (and when it is back): ingest's /readyz reads it */
  readonly readiness?: { set(component: string, problem: string | null): void };
  /** the stages to run (default: batcher and settler) */
  readonly stages?: SettlementStages;
  /** the process registry and per-stage readiness: each chain's metrics and /readyz checks go there (observe.ts) */
  readonly telemetry?: ProcessTelemetry;
}

export { archiveDir } from "../batcher/open-archive.js";

export async function startSettlement(config: RelayerConfig, options: StartSettlementOptions = {}): Promise<SettlementRuntime> {
  const logger = options.logger;
  const stages = options.stages ?? { batcher: true, settler: true };
  // checked (folder writable, bucket reachable) only when some chain will settle: nothing else touches it here
  const settles = config.chains.some((chain) => chain.rpcUrls.length > 0 && (chain.signer ?? config.settler.signer) !== undefined);
  const archive = settles ? await openCheckedArchive(config, logger) : openArchive(config);
  const redis: Redis = asRedis(createWorkerRedis(config.redis, { connectionName: "agentgpt-settlement", ...(logger ? { logger } : {}) }));
  const chains: ChainSettlement[] = [];
  const workers: Worker[] = [];
  const workerConnections: RedisClient[] = [];
  /** each chain's keys in use: their device sessions are closed when replaced (after the settler applied the new ones) or at stop */
  const keysInUse = new Map<string, ChainKeys>();
  let rotation: RotationSetup | null = null;
  let follower: KeyFollower | null = null;
  const rotated = new Set(config.settler.rotation === undefined ? [] : rotatedChains(config).map((chain) => chain.name));
  const stopAll = async () => {
    await rotation?.stage.stop();
    await follower?.stop();
    await Promise.all(workers.map((worker) => worker.close()));
    // BullMQ leaves a connection it was given open: close the workers' own
    for (const connection of workerConnections) await connection.quit().catch(() => connection.disconnect());
    for (const chain of chains) {
      await chain.release?.stop();
      await chain.batcher?.stop();
      await chain.settler?.stop();
      chain.observed?.detach();
    }
    for (const keys of keysInUse.values()) await keys.close();
    keysInUse.clear();
    // the ring's keys (and the rotator key): their device sessions, now that no settler signs any more
    await follower?.closeKeys();
    await rotation?.close();
    await redis.quit().catch(() => redis.disconnect());
    archive.close();
  };
  try {
    if (config.settler.rotation !== undefined) {
      rotation = await setupRotation(config, redis, { scheduled: true, ...(options.env ? { env: options.env } : {}), ...(logger ? { logger } : {}) });
      follower = new KeyFollower({
        ring: rotation.ring,
        open: rotation.open,
        apply: async (active, retiring, ring, applied) => {
          const settlers = chains.flatMap((settlement) => (rotated.has(settlement.chain) && settlement.settler !== null ? [settlement.settler] : []));
          // the dropped keys are closed once the last settler took the new ones (between two of its passes)
          let waiting = settlers.length;
          for (const settler of settlers) {
            settler.useKeys(active, retiring, () => {
              if (--waiting === 0) applied();
            });
          }
          if (settlers.length === 0) applied();
          logger?.info({ generation: ring.generation, active: active.address, retiring: retiring.map((key) => key.address) }, "settlers follow the key ring");
        },
        pollMs: Math.min(config.settler.pollMs, config.settler.rotation.pollMs),
        ...(logger ? { logger } : {}),
      });
    }
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
      const settlement = await startChain(config, chain, archive, redis, { ...options, stages }, (keys) => keysInUse.set(chain.name, keys));
      chains.push(settlement);
      // the ring's keys, not the configured one, once a rotation has happened (taken before the first pass)
      if (follower !== null && settlement.settler !== null && rotated.has(chain.name)) await follower.sync(true);
      settlement.settler?.start();
      settlement.release?.start();
      const batcher = settlement.batcher;
      if (batcher === null) {
        logger?.info({ chain: chain.name, chainId: settlement.chainId, router: settlement.router, signer: settlement.signer }, "settler started (batches come from the batchers of other processes)");
        continue;
      }
      const connection = createWorkerRedis(config.redis, { connectionName: `agentgpt-batcher-${chain.name}` });
      workerConnections.push(connection);
      const worker = createReceiptWorker({
        connection,
        prefix: config.redis.prefix,
        shards: isClusterTarget(config.redis) ? config.redis.shards : null,
        chain: chain.name,
        handler: (receipts) => batcher.take(receipts),
        // take() is atomic and idempotent per receipt, so chunks can be taken in parallel (order does not matter).
        concurrency: 4,
      });
      worker.on("failed", (job, error) => logger?.error({ chain: chain.name, chunk: job?.id, err: error.message }, "receipt chunk not taken; retried"));
      workers.push(worker);
      batcher.start();
      logger?.info(
        { chain: chain.name, chainId: settlement.chainId, router: settlement.router, signer: settlement.signer, rpc: settlement.rpc.health().map((h) => h.endpoint), stages },
        "settlement started",
      );
    }
    follower?.start();
    rotation?.stage.start();
  } catch (error) {
    await stopAll();
    throw error;
  }
  const reloadKeys = async (next: RelayerConfig): Promise<KeyReload[]> => {
    const results: KeyReload[] = [];
    for (const settlement of chains) {
      const log = logger?.child({ chain: settlement.chain });
      const { settler } = settlement;
      if (settler === null) continue; // a batcher only: it signs nothing
      const kept = (reason: string, fields: Record<string, unknown> = {}) => {
        log?.error({ ...fields, active: settler.activeSigner, reason }, "key reload failed: the settler keeps its current keys");
        results.push({ chain: settlement.chain, ok: false, reason, active: settler.activeSigner });
      };
      if (rotated.has(settlement.chain)) {
        kept("settler.rotation manages this chain's keys (the key ring): a reload does not change them; use agentgpt keys revoke for a leaked key");
        continue;
      }
      const chain = next.chains.find((c) => c.name === settlement.chain);
      const signerConfig = chain?.signer ?? next.settler.signer;
      if (chain === undefined || signerConfig === undefined) {
        kept("the reloaded configuration has no signer for this chain (settler.signer or chains.<name>.signer)");
        continue;
      }
      let loaded: ChainKeys;
      try {
        loaded = await loadChainKeys(signerConfig, next, options);
      } catch (error) {
        kept(error instanceof Error ? error.message : String(error));
        continue;
      }
      const keys = loaded;
      const refuse = (reason: string, fields: Record<string, unknown> = {}) => {
        void keys.close();
        kept(reason, fields);
      };
      if (keys.wallet.address !== settler.activeSigner) {
        let granted: boolean;
        try {
          granted = await hasRelayerRole(settlement.rpc, settlement.router, keys.wallet.address);
        } catch (error) {
          refuse(`cannot ask the router whether ${keys.wallet.address} holds RELAYER_ROLE (${error instanceof Error ? error.message : String(error)}): reload again when the RPC answers`);
          continue;
        }
        if (!granted) {
          refuse(`the new signer ${keys.wallet.address} has no RELAYER_ROLE on the router yet: grant it first (agentgpt keys rotate shows how), then reload again`, {
            refused: keys.wallet.address,
          });
          continue;
        }
        const busy = inFlightOn(await settlement.store.active(), settler.activeSigner).length;
        if (busy > 0 && !keys.retiring.some((key) => key.address === settler.activeSigner)) {
          log?.warn(
            { previous: settler.activeSigner, inFlight: busy },
            "batches are in flight on the previous key, which the new configuration does not list as retiring: they are watched and rebroadcast, but cannot be bumped",
          );
        }
      }
      const previous = keysInUse.get(settlement.chain);
      keysInUse.set(settlement.chain, keys);
      settler.useKeys(keys.wallet, keys.retiring, () => void previous?.close());
      const retiring = keys.retiring.map((key) => key.address);
      log?.info({ active: keys.wallet.address, retiring }, "signing keys reloaded");
      results.push({ chain: settlement.chain, ok: true, active: keys.wallet.address, retiring });
    }
    return results;
  };
  return { chains, archive, stop: stopAll, reloadKeys };
}

/**
 * What `relayer start` requires of the settlement stage before it touches a chain, for `relayer check`: each chain
 * with rpc_urls and a signer has its keys loaded (keystores opened with their passwords), as start does. Returns a
 * line per chain; throws the SigningKeyError start would.
 */
export async function checkSettlementKeys(config: RelayerConfig, env: Readonly<Record<string, string | undefined>> = process.env): Promise<string[]> {
  const lines: string[] = [];
  for (const chain of config.chains) {
    const signerConfig = chain.signer ?? config.settler.signer;
    if (chain.rpcUrls.length === 0) {
      lines.push(`settler ${chain.name}: no rpc_urls: its receipts stay queued, nothing is settled`);
      continue;
    }
    if (signerConfig === undefined) {
      lines.push(`settler ${chain.name}: no signer (settler.signer or chains.${chain.name}.signer): its receipts stay queued, nothing is settled`);
      continue;
    }
    const keys = await loadChainKeys(signerConfig, config, { env });
    await keys.close();
    const retiring = keys.retiring.length === 0 ? "" : `; retiring ${keys.retiring.map((key) => key.address).join(", ")}`;
    lines.push(`settler ${chain.name}: signs with ${keys.wallet.address}${retiring}`);
  }
  return lines;
}

interface ChainKeys {
  wallet: SettlerSigner;
  retiring: SettlerSigner[];
  /** closes the keys' device sessions or clients (PKCS#11, KMS); nothing for keystores */
  close(): Promise<void>;
}

async function loadChainKeys(signerConfig: NonNullable<ChainConfig["signer"]>, config: RelayerConfig, options: StartSettlementOptions): Promise<ChainKeys> {
  const loadOptions = { ...(options.env ? { env: options.env } : {}), baseDir: dirname(config.files[0] ?? ".") };
  const key = await loadSigningKey(signerConfig, loadOptions);
  if (key.development) options.logger?.warn({ source: key.source }, "the settler signs with a raw key from the environment: development only");
  let retiring: SettlerSigner[] = [];
  let closeRetiring: () => Promise<void> = async () => undefined;
  if (signerConfig.retiring !== undefined) {
    try {
      const old = await loadSigningKey(signerConfig.retiring, { ...loadOptions, label: "settler signer's retiring key" });
      retiring = [old.wallet];
      closeRetiring = () => old.close();
    } catch (error) {
      await key.close().catch(() => undefined);
      throw error;
    }
  }
  options.logger?.info({ signer: key.wallet.address, source: key.source }, "settler key loaded");
  return {
    wallet: key.wallet,
    retiring,
    close: async () => {
      await Promise.allSettled([key.close(), closeRetiring()]);
    },
  };
}

const ROLES = new Interface(["function hasRole(bytes32 role, address account) view returns (bool)"]);

async function hasRelayerRole(rpc: RpcPool, router: string, account: string): Promise<boolean> {
  const data = ROLES.encodeFunctionData("hasRole", [RELAYER_ROLE, account]);
  const result = await rpc.request<string>("eth_call", [{ to: router, data }, "latest"]);
  return ROLES.decodeFunctionResult("hasRole", result)[0] as boolean;
}

async function startChain(
  config: RelayerConfig,
  chain: ChainConfig,
  archive: Archive,
  redis: Redis,
  options: StartSettlementOptions & { stages: SettlementStages },
  onKeys: (keys: ChainKeys) => void,
): Promise<ChainSettlement> {
  const logger = options.logger?.child({ chain: chain.name });
  const rpc = new RpcPool(chain.rpcUrls, { ...(logger ? { logger } : {}) });
  const chainId = Number(BigInt(await rpc.request<string>("eth_chainId")));
  if (chain.chainId !== undefined && chain.chainId !== chainId) {
    throw new SigningKeyError(`chains.${chain.name}: chain_id is ${chain.chainId} but its RPC serves chain ${chainId}: fix chain_id or rpc_urls`);
  }
  const router = chain.router ?? (await loadDeployment(chainId, { networkName: chain.name })).addresses.autoPayLLM;
  const guard = new ChainGuard(rpc, { chain: chain.name, chainId, router });
  await guard.init();
  const wrong = await guard.problem();
  if (wrong !== null) throw new ChainError("WRONG_CHAIN", wrong);
  const store = new SettlementStore(redis, config.redis.prefix, chain.name);
  const pool = new BatchPool(redis, { prefix: config.redis.prefix, chain: chain.name, graceMs: config.batcher.knownGraceMs });
  const observed = options.telemetry === undefined ? undefined : observeChain(options.telemetry, chain.name);
  const started = options.stages.settler ? await startSettler(config, chain, archive, redis, options, { rpc, chainId, router, guard, store, observed }, onKeys) : null;
  const settler = started?.settler ?? null;
  const release = started?.release ?? null;
  const batcher = options.stages.batcher
    ? await startBatcher(config, chain, archive, { rpc, chainId, router, pool, store, settler, observed, ...(logger ? { logger } : {}) })
    : null;
  observed?.attach({
    redis,
    rpc,
    store,
    pool,
    batcher,
    settler,
    release,
    guardComponent: `settlement on chain ${chain.name}`,
    minSignerBalance: chain.minSignerBalance ?? config.settler.minSignerBalance,
  });
  return {
    ...(observed === undefined ? {} : { observed }),
    chain: chain.name,
    chainId,
    router,
    signer: settler?.activeSigner ?? null,
    rpc,
    store,
    pool,
    batcher,
    settler,
    release,
  };
}

/**
 * The batcher of one chain: under its lease (the pool's lease keys, `settler.lease_ttl`), handing batches to the
 * settler of this process, or to the settler ledger in Redis when the settler runs elsewhere.
 */
async function startBatcher(
  config: RelayerConfig,
  chain: ChainConfig,
  archive: Archive,
  parts: { rpc: RpcPool; chainId: number; router: string; pool: BatchPool; store: SettlementStore; settler: Settler | null; observed: ObservedChain | undefined; logger?: Logger },
): Promise<Batcher> {
  const { rpc, chainId, router, pool, store, logger } = parts;
  // Read once: governance may change it only before the router's first batch. Without it no batch can be cut.
  const usageBucket = await readUsageBucket(rpc, router);
  logger?.info({ router, usageBucket }, "router usage bucket: batches are cut at its boundaries");
  const registry = new OnchainRegistry(rpc, router);
  const sink: BatchSink = parts.settler ?? {
    // the settler runs in another process: its ledger is the hand-over (submit is idempotent by batch id)
    submit: async (batch) => {
      const head = Number(BigInt(await rpc.request<string>("eth_blockNumber")));
      if (await store.submit(batch, head)) logger?.info({ batchId: batch.batchId, rows: batch.rows, receipts: batch.receipts }, "batch handed to the settlers' ledger");
    },
  };
  const batcherLogger = logger?.child({ stage: "batcher" });
  return new Batcher({
    chain: chain.name,
    pool,
    archive,
    sink,
    usageBucket,
    context: async (receipts) => ({ chain: chain.name, chainId, router, registry: await registry.resolve(receipts) }),
    maxReceipts: config.batcher.maxReceipts,
    maxWaitMs: config.batcher.maxWaitMs,
    lease: new Lease(pool.redisConnection, pool.leaseKeys.key, config.settler.leaseTtlMs, {
      fenceKey: pool.leaseKeys.fenceKey,
      label: `batcher of chain ${chain.name}`,
      ...(batcherLogger ? { logger: batcherLogger } : {}),
    }),
    ...(parts.observed === undefined ? {} : { events: parts.observed.batcher }),
    ...(batcherLogger ? { logger: batcherLogger } : {}),
  });
}

/** The settler of one chain and its release stage (unless `payout.enabled` is false), signing with the chain's key. */
async function startSettler(
  config: RelayerConfig,
  chain: ChainConfig,
  archive: Archive,
  redis: Redis,
  options: StartSettlementOptions,
  parts: { rpc: RpcPool; chainId: number; router: string; guard: ChainGuard; store: SettlementStore; observed: ObservedChain | undefined },
  onKeys: (keys: ChainKeys) => void,
): Promise<{ settler: Settler; release: ReleaseStage | null }> {
  const logger = options.logger?.child({ chain: chain.name });
  const { rpc, chainId, router, guard, store, observed } = parts;
  const signerConfig = (chain.signer ?? config.settler.signer)!;
  const keys = await loadChainKeys(signerConfig, config, { ...options, ...(logger ? { logger } : {}) });
  onKeys(keys);
  if (!(await hasRelayerRole(rpc, router, keys.wallet.address))) {
    logger?.warn({ signer: keys.wallet.address, router }, "the settler's key has no RELAYER_ROLE on the router: batches stay queued until it is granted");
  }
  // The release stage: its releases go out as the settler's side calls (one key, one nonce sequence, one lease).
  let settlerRef: Settler | null = null;
  const release = config.payout.enabled
    ? new ReleaseStage({
        schedule: new ReleaseSchedule(redis, config.redis.prefix, chain.name),
        rpc,
        router,
        intervalMs: config.payout.intervalMs,
        lookbackBlocks: config.payout.lookbackBlocks,
        logChunkBlocks: config.payout.logChunkBlocks,
        active: () => settlerRef?.lease.held ?? false,
        onReady: () => settlerRef?.poke(),
        ...(logger ? { logger: logger.child({ stage: "release" }) } : {}),
        ...(observed === undefined ? {} : { events: observed.payout }),
      })
    : null;
  const settler = new Settler({
    store,
    rpc,
    archive,
    chainId,
    router,
    wallet: keys.wallet,
    retiring: keys.retiring,
    fees: resolveFees(config.settler.fees, chain.fees),
    confirmations: chain.confirmations,
    replacement: chain.replacement ?? (ARBITRUM_CHAIN_IDS.has(chainId) ? "resubmit" : "bump"),
    pollMs: config.settler.pollMs,
    stuckAfterMs: config.settler.stuckAfterMs,
    maxInFlight: config.settler.maxInFlight,
    leaseTtlMs: config.settler.leaseTtlMs,
    ...(release === null ? {} : { side: release, onFinal: (record) => release.settled(record) }),
    guard,
    onHealth: (problem) => options.readiness?.set(`settlement on chain ${chain.name}`, problem),
    ...(observed === undefined ? {} : { events: observed.settler }),
    ...(logger ? { logger: logger.child({ stage: "settler" }) } : {}),
  });
  settlerRef = settler;
  if (keys.retiring.length > 0) {
    logger?.info({ active: keys.wallet.address, retiring: keys.retiring.map((key) => key.address) }, "key rotation: new batches are signed with the active key; the retiring key finishes its own");
  }
  return { settler, release };
}
