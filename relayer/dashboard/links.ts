/**
 * Where the page links a batch's transaction and data CID: `dashboard.explorers.<chain>` (a URL template with
 * {tx}), else a known explorer for the chain id; `dashboard.ipfs_gateway` for CIDs. The page only links to them
 * (nothing is loaded from them).
 */
import type { DashboardConfig } from "../config/index.js";

export const KNOWN_EXPLORERS: Readonly<Record<number, string>> = {
  42161: "https://arbiscan.io/tx/{tx}",
  42170: "https://nova.arbiscan.io/tx/{tx}",
  421614: "https://sepolia.arbiscan.io/tx/{tx}",
  137: "https://polygonscan.com/tx/{tx}",
  80002: "https://amoy.polygonscan.com/tx/{tx}",
};

export interface Links {
  /** chain name -> URL template with {tx} */
  readonly explorers: Readonly<Record<string, string>>;
  /** URL template with {cid}, or null */
  readonly ipfsGateway: string | null;
}

export function linksFor(dashboard: Pick<DashboardConfig, "explorers" | "ipfsGateway">, chains: ReadonlyArray<{ name: string; chainId: number | null }>): Links {
  const explorers: Record<string, string> = {};
  for (const chain of chains) {
    const template = dashboard.explorers[chain.name] ?? (chain.chainId === null ? undefined : KNOWN_EXPLORERS[chain.chainId]);
    if (template !== undefined) explorers[chain.name] = template;
  }
  return { explorers, ipfsGateway: dashboard.ipfsGateway };
}
