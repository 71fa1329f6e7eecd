/**
 * Opening a JSON-RPC connection to a chain by network name or URL, with the chain id checked before anything else
 * happens. No Hardhat at runtime: the relayer and the CLI use ethers directly.
 */
import { JsonRpcProvider, Network } from "ethers";

import { ChainError } from "./errors.js";
import { LOCAL_CHAIN_IDS, networkByChainId, networkByName, redactUrl, type NetworkInfo } from "./networks.js";

export interface ChainConnection {
  provider: JsonRpcProvider;
  chainId: number;
  /** The known network for this chain id, or a synthetic one (`chain-<id>`) for a custom `--rpc`. */
  network: NetworkInfo;
  /** The RPC URL, redacted for messages. */
  rpcLabel: string;
}

export interface OpenChainOptions {
  /** A network name from relayer/chain/networks.ts (default `localhost`). */
  network?: string;
  /** An explicit RPC URL; overrides the network's URL variable. */
  rpc?: string;
  /** Abort the first request after this long (ms, default 10,000). */
  timeoutMs?: number;
}

/**
 * Connects to `options.rpc`, else the URL in the network's variable (e.g. `ARBITRUM_SEPOLIA_RPC_URL`), else the
 * network's default (localhost only). Checks that the node answers and serves the expected chain.
 *
 * @throws ChainError NO_RPC_URL, RPC_UNREACHABLE or WRONG_CHAIN.
 */
export async function openChain(options: OpenChainOptions = {}): Promise<ChainConnection> {
  const named = options.rpc === undefined || options.network !== undefined;
  const expected = named ? networkByName(options.network ?? "localhost") : undefined;
  const fromVariable =
    expected?.rpcUrlVariable === undefined ? undefined : process.env[expected.rpcUrlVariable] || undefined;
  const url = options.rpc ?? fromVariable ?? expected?.defaultRpcUrl;
  if (url === undefined) {
    throw new ChainError(
      "NO_RPC_URL",
      `no RPC URL for ${expected?.name}: set ${expected?.rpcUrlVariable} in the environment or pass --rpc <url>`,
    );
  }
  const rpcLabel = redactUrl(url);
  const chainId = await fetchChainId(url, rpcLabel, options.timeoutMs ?? 10_000);
  if (expected !== undefined && chainId !== expected.chainId) {
    throw new ChainError(
      "WRONG_CHAIN",
      `the RPC at ${rpcLabel} serves chain ${chainId}, not ${expected.name} (${expected.chainId}): ` +
        `check --rpc or ${expected.rpcUrlVariable}`,
    );
  }
  const network = expected ??
    networkByChainId(chainId) ?? {
      name: `chain-${chainId}`,
      chainId,
      secondsPerClockTick: 12,
      local: LOCAL_CHAIN_IDS.has(chainId),
    };
  const staticNetwork = Network.from(chainId);
  const provider = new JsonRpcProvider(url, staticNetwork, {
    staticNetwork,
    // Local nodes mine instantly; public chains take seconds per block.
    pollingInterval: network.local ? 50 : 1_000,
    // No cached reads: two transactions sent back to back must each see the latest nonce.
    cacheTimeout: -1,
  });
  return { provider, chainId, network, rpcLabel };
}

async function fetchChainId(url: string, rpcLabel: string, timeoutMs: number): Promise<number> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new ChainError(
      "RPC_UNREACHABLE",
      `no JSON-RPC node answers at ${rpcLabel}: start one (\`npx hardhat node --hostname 127.0.0.1\`) ` +
        `or check --rpc / the network's RPC URL variable`,
      { cause: error instanceof Error ? new Error(error.message.replaceAll(url, rpcLabel)) : undefined },
    );
  }
  const body = (await response.json().catch(() => undefined)) as { result?: unknown } | undefined;
  if (!response.ok || typeof body?.result !== "string") {
    throw new ChainError(
      "RPC_UNREACHABLE",
      `the node at ${rpcLabel} did not answer eth_chainId (HTTP ${response.status}): check the RPC URL`,
    );
  }
  return Number(BigInt(body.result));
}

/**
 * The chain id `url` serves (eth_chainId over plain fetch, before a provider is made), within `timeoutMs`. Throws a
 * plain Error (unreachable, HTTP error, no answer) for callers that try several URLs and report each.
 */
export async function askChainId(url: string, timeoutMs: number): Promise<number> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await response.json().catch(() => undefined)) as { result?: unknown } | undefined;
  if (!response.ok || typeof body?.result !== "string") throw new Error(`HTTP ${response.status}, no eth_chainId answer`);
  return Number(BigInt(body.result));
}
