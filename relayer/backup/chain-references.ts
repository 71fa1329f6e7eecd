/**
 * The on-chain side of a backup: a connection to each chain the archive has batches for (its configured RPC URLs,
 * tried in order, and the router from the configuration or the deployment), and what the chain records of each
 * batch: `batchInfo` (roots, times, status, counts) plus its BatchSettled and RowRejected logs (transaction, block,
 * CID, rejected rows). A block hint (the settler's ledger, or the backup's own reference) makes that one log query
 * of one block; without one, the block is found by the batch's settlement time.
 */
import { JsonRpcProvider, Network, getAddress } from "ethers";

import { loadDeployment } from "../chain/deployment.js";
import { redactUrl } from "../chain/networks.js";
import { askChainId } from "../chain/provider.js";
import type { ChainConfig } from "../config/index.js";
import { BlockClock } from "../disputes/block-clock.js";
import { openDisputeChain, type DisputeChain } from "../disputes/dispute-chain.js";
import { DisputeError } from "../disputes/errors.js";
import { decodeSettlementLogs, readSettledBatch, settlementTopics } from "../disputes/settled-batch.js";
import { BackupError } from "./errors.js";
import type { OnchainSettlement } from "./manifest.js";

export interface BackupChain {
  readonly name: string;
  readonly chainId: number;
  readonly router: string;
  readonly rpcLabel: string;
  readonly chain: DisputeChain;
  readonly clock: BlockClock;
  readonly provider: JsonRpcProvider;
  close(): void;
}

export interface OpenChainOptions {
  readonly deploymentsDir?: string | undefined;
  /** ms to wait for each RPC URL's first answer (default 10,000) */
  readonly timeoutMs?: number;
}

/**
 * Connects to `config`'s chain: the first RPC URL that answers with the configured chain id.
 *
 * @throws BackupError NO_CHAIN (no URL, none answers) or CHAIN_MISMATCH (wrong chain id).
 */
export async function openBackupChain(config: ChainConfig, options: OpenChainOptions = {}): Promise<BackupChain> {
  if (config.rpcUrls.length === 0) {
    throw new BackupError("NO_CHAIN", `chains.${config.name}.rpc_urls is empty: add the chain's RPC URL (the backup reads each batch's settlement from the chain)`);
  }
  const failures: string[] = [];
  for (const url of config.rpcUrls) {
    const label = redactUrl(url);
    let chainId: number;
    try {
      chainId = await askChainId(url, options.timeoutMs ?? 10_000);
    } catch (error) {
      failures.push(`${label} (${(error as Error).message.replaceAll(url, label)})`);
      continue;
    }
    if (config.chainId !== undefined && config.chainId !== chainId) {
      throw new BackupError("CHAIN_MISMATCH", `chains.${config.name}: chain_id is ${config.chainId} but ${label} serves chain ${chainId}: fix chain_id or rpc_urls`);
    }
    const network = Network.from(chainId);
    const provider = new JsonRpcProvider(url, network, { staticNetwork: network, pollingInterval: 1000 });
    const router = config.router ?? (await loadDeployment(chainId, { deploymentsDir: options.deploymentsDir, networkName: config.name })).addresses.autoPayLLM;
    let chain: DisputeChain;
    try {
      chain = await openDisputeChain(provider, { autoPayLLM: router });
    } catch (error) {
      provider.destroy();
      if (error instanceof DisputeError) throw new BackupError("NO_CHAIN", `chains.${config.name}: ${error.message}`, { cause: error });
      throw error;
    }
    return {
      name: config.name,
      chainId,
      router: getAddress(router),
      rpcLabel: label,
      chain,
      clock: new BlockClock(provider),
      provider,
      close: () => provider.destroy(),
    };
  }
  throw new BackupError("NO_CHAIN", `chains.${config.name}: no RPC URL answers: ${failures.join("; ")}`);
}

/** The head block the references are read at. */
export async function headOf(chain: BackupChain): Promise<{ number: number; hash: string; timestamp: number }> {
  const block = await chain.provider.getBlock("latest");
  if (block === null || block.hash === null) throw new BackupError("NO_CHAIN", `chain ${chain.name}: the RPC returned no latest block`);
  return { number: block.number, hash: block.hash.toLowerCase(), timestamp: block.timestamp };
}

/**
 * What the chain records of `batchId`, or null when the router has no such batch (status 0: not settled).
 *
 * @param hintBlock the block the batch is believed to have settled in (looked at first; a wrong hint costs one query)
 * @throws BackupError NO_CHAIN when the batch is settled but no RPC log can be found (a pruned node).
 */
export async function readOnchainSettlement(chain: BackupChain, batchId: string, hintBlock?: number | null): Promise<OnchainSettlement | null> {
  const id = batchId.toLowerCase();
  const info = await chain.chain.router.batchInfo(id);
  const status = Number(info.status);
  if (status === 0) return null;
  let found: { txHash: string | null; block: number | null; dataCid: string; escrowed: bigint; rejected: ReadonlyMap<number, string> } | null = null;
  if (hintBlock !== undefined && hintBlock !== null) {
    const topics = settlementTopics(chain.chain);
    const logs = await chain.provider.getLogs({
      address: chain.router,
      fromBlock: hintBlock,
      toBlock: hintBlock,
      topics: [[topics.batchSettled, topics.rowRejected], id],
    });
    found = decodeSettlementLogs(chain.chain, id, logs);
  }
  if (found === null) {
    try {
      found = await readSettledBatch(chain.chain, id, chain.clock);
    } catch (error) {
      if (error instanceof DisputeError) throw new BackupError("NO_CHAIN", `chain ${chain.name}: ${error.message}`, { cause: error });
      throw error;
    }
  }
  if (found.txHash === null || found.block === null) {
    throw new BackupError("NO_CHAIN", `chain ${chain.name}: batch ${id} is settled but its transaction was not found: use an RPC that serves old logs`);
  }
  const block = await chain.provider.getBlock(found.block);
  if (block === null || block.hash === null) throw new BackupError("NO_CHAIN", `chain ${chain.name}: block ${found.block} is not available from the RPC`);
  return {
    txHash: found.txHash.toLowerCase(),
    block: found.block,
    blockHash: block.hash.toLowerCase(),
    rowsRoot: info.rowsRoot.toLowerCase(),
    receiptsRoot: info.receiptsRoot.toLowerCase(),
    dataCid: found.dataCid,
    settledAt: Number(info.settledAt),
    releaseAt: Number(info.releaseAt),
    callsFrom: Number(info.callsFrom),
    status: status === 2 ? "released" : "escrowed",
    rowCount: Number(info.rowCount),
    acceptedRows: Number(info.acceptedCount),
    rejected: [...found.rejected.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, reason]) => [index, reason] as OnchainSettlement["rejected"][number]),
    escrowed: found.escrowed.toString(),
  };
}
