/**
 * The setup every relayer-process test and chaos script shares: a `hardhat node` on loopback with the contract
 * suite deployed (deployChainSuite), a Redis client and a key prefix, a relayer config file written for them
 * (writeRelayerConfig), relayer processes spawned from it, and one `close()` that undoes all of it. Each piece is
 * the caller's when it passes it in (a node shared by several deployments, a Redis of its own, a fixed prefix):
 * close() then leaves that piece alone.
 */
import { appendFileSync, rmSync } from "node:fs";

import { Redis } from "ioredis";

import { SettlementStore } from "../../relayer/settler/settlement-store.js";
import { deployChainSuite, type ChainSuite } from "./chain-suite.js";
import { startHardhatNode, type HardhatNode } from "./hardhat-node.js";
import { dropPrefix, REDIS_URL, uniquePrefix } from "./redis.js";
import { startRelayer, writeRelayerConfig, type RelayerConfigOptions, type RelayerProcess, type RelayerSetup } from "./relayer-process.js";

/** The chain's name in the written config (writeRelayerConfig). */
export const CHAIN = "local";

export interface RelayerEnvironmentOptions {
  /** a node the caller owns (several deployments on one node); default: one started here, stopped by close() */
  node?: HardhatNode;
  /** deployChainSuite's options */
  payers?: number;
  deposit?: bigint;
  /** the Redis the relayer uses (default REDIS_URL) */
  redisUrl?: string;
  /** a client of the caller's for redisUrl (a cluster client, a Redis it restarts); default: one opened here */
  redis?: Redis;
  /** a fixed key prefix, whose keys stay the caller's; default: uniquePrefix(label), its keys dropped by close() */
  prefix?: string;
  label?: string;
  /** the relayer config beyond what the environment fills in (rpcUrls defaults to the node) */
  config?: Partial<Omit<RelayerConfigOptions, "redisUrl" | "prefix" | "router" | "payers" | "chainId">>;
  /** top-level YAML sections appended to the config file, e.g. a reconciler section */
  configExtra?: string;
}

export interface SpawnOptions {
  /** `--stages` of `relayer start` */
  stages?: string;
  /** more arguments of `relayer start` */
  args?: readonly string[];
  env?: Record<string, string>;
  /** the agentgpt entry and folder to run it in (startRelayer's `command`) */
  command?: { bin?: string; cwd?: string };
  /** another config than the environment's (e.g. a second process on another port) */
  setup?: RelayerSetup;
}

export interface SettledOptions {
  /** default 90 s */
  timeoutMs?: number;
  /** default 200 ms */
  pollMs?: number;
  /** count receipts rejected on chain as done (default true); false: only settled ones count */
  countRejected?: boolean;
}

export interface RelayerEnvironment {
  node: HardhatNode;
  suite: ChainSuite;
  redis: Redis;
  redisUrl: string;
  prefix: string;
  setup: RelayerSetup;
  /** the settler's ledger of the chain */
  store: SettlementStore;
  /** every process spawn() started, in order (stopped ones included) */
  processes: RelayerProcess[];
  /** `agentgpt relayer start` on the environment's config with its settler key */
  spawn(options?: SpawnOptions): Promise<RelayerProcess>;
  /** Waits until `count` receipts are final and no batch is active; resolves with the ledger's counters. */
  settled(count: number, options?: SettledOptions): Promise<Record<string, number>>;
  /** each payer's balance in the router, in payer order */
  balances(): Promise<bigint[]>;
  /** the tail of every process's logs on stderr (for a failed test) */
  printLogs(tail?: number): void;
  /** Stops every process, drops the prefix's keys and the config folder, and what the environment started. */
  close(): Promise<void>;
}

export async function startRelayerEnvironment(options: RelayerEnvironmentOptions = {}): Promise<RelayerEnvironment> {
  const ownNode = options.node === undefined;
  const node = options.node ?? (await startHardhatNode());
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const ownRedis = options.redis === undefined;
  const redis = options.redis ?? new Redis(redisUrl, { maxRetriesPerRequest: null });
  const ownKeys = options.prefix === undefined;
  const prefix = options.prefix ?? uniquePrefix(options.label);
  let setup: RelayerSetup | undefined;
  const processes: RelayerProcess[] = [];

  const close = async () => {
    for (const p of [...processes].reverse()) await p.stop();
    if (ownKeys) await dropPrefix(redis, prefix).catch(() => undefined);
    if (ownRedis) redis.disconnect();
    if (ownNode) await node.stop();
    if (setup !== undefined) rmSync(setup.dir, { recursive: true, force: true });
  };

  try {
    const suite = await deployChainSuite(node.url, { payers: options.payers, deposit: options.deposit });
    setup = await writeRelayerConfig({
      rpcUrls: [node.url],
      ...options.config,
      redisUrl,
      prefix,
      router: suite.routerAddress,
      payers: suite.payers.map((payer) => payer.address),
      chainId: suite.chainId,
    });
    if (options.configExtra !== undefined) appendFileSync(setup.configFile, options.configExtra);
    const written = setup;
    const store = new SettlementStore(redis, prefix, CHAIN);
    return {
      node,
      suite,
      redis,
      redisUrl,
      prefix,
      setup: written,
      store,
      processes,
      async spawn(spawn: SpawnOptions = {}) {
        const args = [...(spawn.stages === undefined ? [] : ["--stages", spawn.stages]), ...(spawn.args ?? [])];
        const p = await startRelayer(spawn.setup ?? written, suite.relayerKey, spawn.env, args, spawn.command);
        processes.push(p);
        return p;
      },
      async settled(count, { timeoutMs = 90_000, pollMs = 200, countRejected = true } = {}) {
        const started = Date.now();
        for (;;) {
          const stats = await store.stats();
          const active = await redis.zcard(store.key("active"));
          const done = (stats.receipts_settled ?? 0) + (countRejected ? (stats.receipts_rejected ?? 0) : 0);
          if (done >= count && active === 0) return stats;
          if (Date.now() - started > timeoutMs) throw new Error(`not settled in ${timeoutMs / 1000} s: ${JSON.stringify(stats)}, ${active} active`);
          await new Promise((r) => setTimeout(r, pollMs));
        }
      },
      balances: () => Promise.all(suite.payers.map((payer) => suite.router.balanceOf(payer.address))),
      printLogs(tail = 6000) {
        for (const [i, p] of processes.entries()) process.stderr.write(`--- relayer ${i} logs ---\n${p.logs().slice(-tail)}\n`);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
