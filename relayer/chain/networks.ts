/**
 * The networks the suite deploys to, under the names hardhat.config.ts uses. The relayer and the CLI connect through
 * plain JSON-RPC (no Hardhat at runtime); RPC URLs and keys come from the same variables as Hardhat's
 * configuration variables, read from the environment.
 */
import { ChainError } from "./errors.js";

export interface NetworkInfo {
  /** Name as in hardhat.config.ts and in `--network`. */
  name: string;
  chainId: number;
  /** Environment variable holding the RPC URL (Hardhat configuration variable of the same name). */
  rpcUrlVariable?: string;
  /** RPC URL used when the variable is unset (local nodes only). */
  defaultRpcUrl?: string;
  /** Environment variable holding the signer's private key (Hardhat configuration variable of the same name). */
  privateKeyVariable?: string;
  /**
   * Approximate seconds per tick of the governance clock (AGPT counts block numbers; on Arbitrum `block.number` is
   * the L1 block number, about 12 s). Used only to turn block counts into rough durations for people.
   */
  secondsPerClockTick: number;
  /** A local development node: its unlocked accounts may sign, and `advance` may mine blocks and move time. */
  local: boolean;
}

export const NETWORKS: Readonly<Record<string, NetworkInfo>> = {
  localhost: {
    name: "localhost",
    chainId: 31337,
    rpcUrlVariable: "LOCALHOST_RPC_URL",
    defaultRpcUrl: "http://127.0.0.1:8545",
    secondsPerClockTick: 1,
    local: true,
  },
  arbitrumSepolia: {
    name: "arbitrumSepolia",
    chainId: 421614,
    rpcUrlVariable: "ARBITRUM_SEPOLIA_RPC_URL",
    privateKeyVariable: "ARBITRUM_SEPOLIA_PRIVATE_KEY",
    secondsPerClockTick: 12,
    local: false,
  },
  polygonAmoy: {
    name: "polygonAmoy",
    chainId: 80002,
    rpcUrlVariable: "POLYGON_AMOY_RPC_URL",
    privateKeyVariable: "POLYGON_AMOY_PRIVATE_KEY",
    secondsPerClockTick: 2,
    local: false,
  },
};

/** Chain ids of development nodes (Hardhat, Anvil). */
export const LOCAL_CHAIN_IDS: ReadonlySet<number> = new Set([31337, 1337]);

export function networkByName(name: string): NetworkInfo {
  const info = NETWORKS[name];
  if (info === undefined) {
    throw new ChainError(
      "UNKNOWN_NETWORK",
      `unknown network "${name}": use one of ${Object.keys(NETWORKS).join(", ")}, or --rpc <url> for any other`,
    );
  }
  return info;
}

export function networkByChainId(chainId: number): NetworkInfo | undefined {
  return Object.values(NETWORKS).find((info) => info.chainId === chainId);
}

/** `text` with every http(s)/ws(s) URL in it redacted (error messages and stacks that may quote an RPC URL). */
export function redactUrls(text: string): string {
  // Punctuation that ends a sentence ("... at http://host:8545:") is not part of the URL.
  return text.replace(/\b(?:https?|wss?):\/\/[^\s"'<>)\]}]+/g, (match) => {
    const url = match.replace(/[.,:;!?]+$/, "");
    return redactUrl(url) + match.slice(url.length);
  });
}

/**
 * A URL fit for messages and logs: scheme, host and port only (providers put API keys in paths and queries).
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const rest = parsed.pathname !== "/" || parsed.search !== "" ? "/…" : "";
    return `${parsed.protocol}//${parsed.host}${rest}`;
  } catch {
    return "<invalid URL>";
  }
}
