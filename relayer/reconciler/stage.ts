/**
 * `startReconciler(config, { logger })`: the reconciler as a stage of `relayer start`. For every chain it covers
 * (`reconciler.chains`, default every chain with rpc_urls): the router (chains.<name>.router, else the deployment
 * file) and its UsageOracle (from the deployment file, checked to serve this router), the archive, the providers'
 * usage adapters, the keys of the payers the operator controls, and a Redis ledger; then one loop per chain.
 * Without a `reconciler:` section it starts nothing.
 */
import { dirname } from "node:path";

import { getAddress } from "ethers";
import type { Redis } from "ioredis";
import { asRedis, createRedis } from "../queue/index.js";
import type { Logger } from "pino";

import { openCheckedArchive } from "../batcher/open-archive.js";
import { ChainError } from "../chain/errors.js";
import { loadDeployment } from "../chain/deployment.js";
import type { ChainConfig, RelayerConfig } from "../config/index.js";
import type { ReconcilerConfig } from "../config/sections/reconciler.js";
import { BlockClock } from "../disputes/block-clock.js";
import { openDisputeChain } from "../disputes/dispute-chain.js";
import { DisputeClient } from "../disputes/dispute-client.js";
import { IpfsClient } from "../disputes/ipfs.js";
import { SettlementStore } from "../settler/settlement-store.js";
import { RpcPool } from "../settler/rpc-pool.js";
import { Lease } from "../settler/lease.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { AutoDisputer, type ControlledPayer } from "./auto-dispute.js";
import { RedisDisputeLedger } from "./dispute-ledger.js";
import { HttpJsonAdapter } from "./http-json-adapter.js";
import { loadKey, loadPayerKeys, ReconcilerKeyError } from "./keys.js";
import { observeReconciler } from "./observe.js";
import { PooledProvider } from "./pooled-provider.js";
import type { ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { Reconciler } from "./reconciler.js";
import { ReconcilerService } from "./reconciler-service.js";
import type { UsageAdapter } from "./usage-adapter.js";

export interface StartReconcilerOptions {
  readonly logger?: Logger | undefined;
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** the process registry and per-stage readiness: each chain's metrics and /readyz checks go there (observe.ts) */
  readonly telemetry?: ProcessTelemetry | undefined;
}

export interface ReconcilerHandle {
  readonly services: readonly { readonly chain: string; readonly service: ReconcilerService }[];
  stop(): Promise<void>;
}

/** The usage adapters of `reconciler.providers` (keys read from the environment). */
export function usageAdapters(reconciler: ReconcilerConfig, env: Readonly<Record<string, string | undefined>> = process.env): Map<string, UsageAdapter> {
  const adapters = new Map<string, UsageAdapter>();
  for (const [provider, adapter] of Object.entries(reconciler.providers)) {
    let apiKey: string | undefined;
    if (adapter.apiKeyEnv !== undefined) {
      apiKey = env[adapter.apiKeyEnv];
      if (apiKey === undefined || apiKey === "") {
        throw new ReconcilerKeyError(`reconciler.providers.${provider}.api_key_env: set ${adapter.apiKeyEnv} to the usage API key`);
      }
    }
    adapters.set(provider, new HttpJsonAdapter({ provider, url: adapter.url, path: adapter.path, apiKey, timeoutMs: adapter.timeoutMs }));
  }
  return adapters;
}

/** The chains the reconciler covers: named ones must exist and have rpc_urls. */
export function reconciledChains(config: RelayerConfig, reconciler: ReconcilerConfig): ChainConfig[] {
  if (reconciler.chains.length === 0) return config.chains.filter((chain) => chain.rpcUrls.length > 0);
  return reconciler.chains.map((name, i) => {
    const chain = config.chains.find((c) => c.name === name);
    if (chain === undefined) {
      throw new ReconcilerKeyError(`reconciler.chains[${i}]: "${name}" is not under chains: (${config.chains.map((c) => c.name).join(", ") || "none"})`);
    }
    if (chain.rpcUrls.length === 0) throw new ReconcilerKeyError(`reconciler.chains[${i}]: chains.${name} has no rpc_urls`);
    return chain;
  });
}

/**
 * What `relayer start` requires of the reconciler before it touches a chain, for `relayer check`: its chains, usage
 * API keys and signing keys, loaded as start loads them. Returns lines to print; throws the error start would.
 */
export async function checkReconciler(config: RelayerConfig, env: Readonly<Record<string, string | undefined>> = process.env): Promise<string[]> {
  const settings = config.reconciler;
  if (settings === undefined) return [];
  const baseDir = dirname(config.files[0] ?? ".");
  const chains = reconciledChains(config, settings);
  const adapters = usageAdapters(settings, env);
  const payerKeys = await loadPayerKeys(settings.payers, { env, baseDir });
  const keeper = settings.keeper === undefined ? payerKeys[0] : await loadKey(settings.keeper, "reconciler.keeper", { env, baseDir });
  return [
    `reconciler: chains ${chains.map((chain) => chain.name).join(", ") || "(none)"}; usage APIs ${[...adapters.keys()].join(", ") || "(none)"}; ` +
      `${payerKeys.length} payer key(s); keeper ${keeper?.wallet.address ?? "(none)"}`,
  ];
}

export async function startReconciler(config: RelayerConfig, options: StartReconcilerOptions = {}): Promise<ReconcilerHandle> {
  const logger = options.logger;
  const settings = config.reconciler;
  if (settings === undefined) {
    logger?.info("no reconciler: section in the configuration: settled batches are not compared with provider reports");
    return { services: [], stop: async () => undefined };
  }
  const env = options.env ?? process.env;
  const baseDir = dirname(config.files[0] ?? ".");
  const chains = reconciledChains(config, settings);
  const adapters = usageAdapters(settings, env);
  const payerKeys = await loadPayerKeys(settings.payers, { env, baseDir });
  const keeperKey = settings.keeper === undefined ? payerKeys[0] : await loadKey(settings.keeper, "reconciler.keeper", { env, baseDir });
  if (keeperKey === undefined) {
    logger?.warn("no reconciler.keeper and no payer keys: open disputes are watched, but nobody here starts their verification or settles them when expired");
  }
  for (const key of [...payerKeys, ...(keeperKey !== undefined && settings.keeper !== undefined ? [keeperKey] : [])]) {
    if (key.development) logger?.warn({ account: key.wallet.address, source: key.source }, "the reconciler signs with a raw key from the environment: development only");
  }
  const archive = await openCheckedArchive(config, logger);
  const ipfs = settings.ipfs === undefined ? undefined : new IpfsClient(settings.ipfs);
  const redis = asRedis(createRedis(config.redis, { maxRetriesPerRequest: 3, connectionName: "agentgpt-reconciler", lazyConnect: false }));
  redis.on("error", () => undefined); // ioredis reconnects; a pass fails and is retried meanwhile

  const services: { chain: string; service: ReconcilerService }[] = [];
  const detach: Array<() => void> = [];
  const stopAll = async () => {
    for (const { service } of services) await service.stop();
    for (const remove of detach.splice(0)) remove();
    await redis.quit().catch(() => redis.disconnect());
    archive.close();
  };
  try {
    for (const chain of chains) {
      const chainLogger = logger?.child({ stage: "reconciler", chain: chain.name });
      const rpc = new RpcPool(chain.rpcUrls, { ...(chainLogger ? { logger: chainLogger } : {}) });
      const chainId = Number(BigInt(await rpc.request<string>("eth_chainId")));
      if (chain.chainId !== undefined && chain.chainId !== chainId) {
        throw new ChainError("WRONG_CHAIN", `chains.${chain.name}: chain_id is ${chain.chainId} but its RPC serves chain ${chainId}: fix chain_id or rpc_urls`);
      }
      const provider = new PooledProvider(rpc, chainId);
      const addresses = await chainAddresses(chain, chainId, provider);
      const disputeChain = await openDisputeChain(provider, addresses);
      const sources = { archive, archiveChain: chain.name, ipfs };
      const client = new DisputeClient(disputeChain, {
        sources,
        store: new SettlementStore(redis, config.redis.prefix, chain.name),
        logChunkBlocks: settings.logChunkBlocks,
        logger: chainLogger,
      });
      const reconciler = new Reconciler({
        chain: disputeChain,
        chainName: chain.name,
        clock: client.clock,
        sources,
        adapterFor: (provider) => adapters.get(provider),
        toleranceBps: settings.toleranceBps,
        minRefund: settings.minRefund,
        logChunkBlocks: settings.logChunkBlocks,
        concurrency: settings.concurrency,
        logger: chainLogger,
      });
      const payers = new Map<string, ControlledPayer>(
        payerKeys.map((key) => [key.wallet.address, { address: key.wallet.address, signer: key.wallet.connect(provider), source: key.source }]),
      );
      const ledger = new RedisDisputeLedger(redis, config.redis.prefix, chain.name);
      // one reconciler (and auto-disputer) per chain across processes: the lease, its token fencing the ledger
      const lease = new Lease(redis, ledger.leaseKey, config.settler.leaseTtlMs, { logger: chainLogger, label: `reconciler of chain ${chain.name}` });
      // fenced with the token held when the pass began, not at each write (see ReconcilerServiceOptions.onPassStart)
      let passToken = 0;
      ledger.fence = { fenceKey: lease.fenceKey, token: () => (passToken === 0 ? lease.token : passToken) };
      const observed =
        options.telemetry === undefined
          ? undefined
          : await observeReconciler(options.telemetry, { chain: chain.name, chainId, router: disputeChain.routerAddress, redis, rpc, ledger });
      if (observed !== undefined) detach.push(observed.detach);
      if (options.telemetry !== undefined) detach.push(options.telemetry.registerLease("reconciler", chain.name, () => lease.held));
      const disputer = new AutoDisputer({ client, payers, keeper: keeperKey?.wallet.connect(provider),
        active: () => lease.held,
        approveBond: settings.approveBond,
        ledger,
        logChunkBlocks: settings.logChunkBlocks,
        logger: chainLogger,
        events: observed?.events,
      });
      const service = new ReconcilerService({
        chainName: chain.name,
        reconciler,
        disputer,
        ledger,
        epochSeconds: Math.round(settings.epochMs / 1000),
        reportDelaySeconds: Math.round(settings.reportDelayMs / 1000),
        intervalMs: settings.intervalMs,
        lease,
        onPassStart: () => {
          passToken = lease.token;
        },
        logger: chainLogger,
        events: observed?.events,
      });
      services.push({ chain: chain.name, service });
      chainLogger?.info(
        {
          chainId,
          router: disputeChain.routerAddress,
          oracle: disputeChain.oracleAddress ?? null,
          providers: [...adapters.keys()],
          payers: [...payers.keys()],
        },
        "reconciler started",
      );
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  for (const { service } of services) service.start();
  return { services, stop: stopAll };
}

/** The router (chains.<name>.router, else the deployment file) and the deployment's UsageOracle if it serves it. */
async function chainAddresses(chain: ChainConfig, chainId: number, provider: PooledProvider): Promise<{ autoPayLLM: string; usageOracle?: string }> {
  let deployment;
  try {
    deployment = await loadDeployment(chainId, { networkName: chain.name });
  } catch (error) {
    if (!(error instanceof ChainError && error.code === "DEPLOYMENT_NOT_FOUND" && chain.router !== undefined)) throw error;
  }
  const router = getAddress(chain.router ?? deployment!.addresses.autoPayLLM);
  const oracle = deployment?.addresses.usageOracle;
  if (oracle === undefined) return { autoPayLLM: router };
  const serves = getAddress(await UsageOracle__factory.connect(oracle, provider).settlement()) === router;
  return serves ? { autoPayLLM: router, usageOracle: oracle } : { autoPayLLM: router };
}
