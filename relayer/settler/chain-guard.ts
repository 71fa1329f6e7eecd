/**
 * Whether the chain a settler was started on is still that chain. A local node restarted (a new chain: same chain
 * id, new genesis, no contracts), an RPC URL now pointing at another network, or a router address with no code
 * cannot be fixed by retrying: every pass would fail with an error nobody can read (an empty `eth_call` result does
 * not decode). The guard names the cause and the fix once, so the settler can stop sending, back off and report
 * itself not ready, instead of logging an undecodable error every second.
 */
import type { RpcPool } from "./rpc-pool.js";

export interface ChainGuardOptions {
  /** the chain's name in the configuration (chains.<name>) */
  readonly chain: string;
  /** the chain id the settler signs for */
  readonly chainId: number;
  readonly router: string;
}

export class ChainGuard {
  private genesis: string | null | undefined;

  constructor(
    private readonly rpc: Pick<RpcPool, "request">,
    readonly options: ChainGuardOptions,
  ) {}

  /**
   * Remembers the chain's genesis block hash (call once at start, while the chain is known to be right). An RPC that
   * cannot serve block 0 (pruned) leaves the genesis check out; the chain id and the router's code are still checked.
   */
  async init(): Promise<void> {
    this.genesis = await this.genesisHash().catch(() => null);
  }

  /**
   * null when the chain is still the one the settler started on and the router has code; otherwise why not, with
   * the fix. An RPC that does not answer is no verdict (null): the RPC pool's fail-over and the pass's retries own that.
   */
  async problem(): Promise<string | null> {
    const { chain, chainId, router } = this.options;
    let served: number;
    let code: string;
    let genesis: string | null;
    try {
      served = Number(BigInt(await this.rpc.request<string>("eth_chainId", [])));
      genesis = this.genesis === null || this.genesis === undefined ? null : await this.genesisHash();
      code = await this.rpc.request<string>("eth_getCode", [router, "latest"]);
    } catch {
      return null;
    }
    const fix = `redeploy the contracts (npm run deploy), point chains.${chain}.router (or the deployment file) at the new router, and restart the relayer`;
    if (served !== chainId) {
      return `chain ${chain}: its RPC now serves chain id ${served}, not ${chainId} (rpc_urls changed, or the node was replaced): fix chains.${chain}.rpc_urls, or ${fix}`;
    }
    if (this.genesis !== undefined && this.genesis !== null && genesis !== null && genesis !== this.genesis) {
      return `chain ${chain} was reset (its genesis block changed from ${this.genesis} to ${genesis}: a restarted local node?): the router and the batches settled on it are gone; ${fix}`;
    }
    if (code === "0x" || code === "") {
      return `chain ${chain}: no contract at the router address ${router} (chain id ${chainId}): the chain was reset or the address is wrong; ${fix}`;
    }
    return null;
  }

  private async genesisHash(): Promise<string | null> {
    const block = await this.rpc.request<{ hash?: string } | null>("eth_getBlockByNumber", ["0x0", false]);
    return block?.hash ?? null;
  }
}
