/**
 * One chain as the monitor reads it: an ethers provider over the chain's RPC URLs (with the settler's fail-over
 * pool), the router (chains.<name>.router, else the deployment file of the chain's id), its payment token checked
 * against the config's token, and the router's event log reader.
 */
import { Contract, getAddress, type Provider } from "ethers";

import { loadDeployment } from "../chain/deployment.js";
import { redactUrls } from "../chain/networks.js";
import type { ChainConfig, TokenUnit } from "../config/index.js";
import { PooledProvider } from "../reconciler/pooled-provider.js";
import { RpcPool } from "../settler/rpc-pool.js";
import type { AutoPayLLM } from "../../typechain-types/index.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import type { TokenReader } from "./budgets.js";
import { MonitorError } from "./errors.js";
import { RouterEvents } from "./router-events.js";

export interface MonitorChain {
  readonly name: string;
  readonly chainId: number;
  readonly provider: Provider;
  readonly routerAddress: string;
  readonly router: AutoPayLLM;
  readonly tokenAddress: string;
  readonly token: TokenReader;
  readonly events: RouterEvents;
}

const ERC20_ABI = [
  "function decimals() view returns (uint8)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address,address) view returns (uint256)",
];

export async function openMonitorChain(chain: ChainConfig, token: TokenUnit, options: { logChunkBlocks?: number } = {}): Promise<MonitorChain> {
  const pool = new RpcPool(chain.rpcUrls, { timeoutMs: 5_000, deadlineMs: 8_000 });
  let chainId: number;
  try {
    chainId = Number(BigInt(await pool.request<string>("eth_chainId")));
  } catch (error) {
    throw new MonitorError("CHAIN", `chains.${chain.name}: no RPC answers (${redactUrls(chain.rpcUrls.join(", "))}): ${redactUrls((error as Error).message)}`, { cause: error });
  }
  if (chain.chainId !== undefined && chain.chainId !== chainId) {
    throw new MonitorError("CHAIN", `chains.${chain.name}: chain_id is ${chain.chainId} but its RPC serves chain ${chainId}: fix chain_id or rpc_urls`);
  }
  const provider = new PooledProvider(pool, chainId);
  const routerAddress = getAddress(chain.router ?? (await loadDeployment(chainId, { networkName: chain.name })).addresses.autoPayLLM);
  if ((await provider.getCode(routerAddress)) === "0x") {
    throw new MonitorError("CHAIN", `chains.${chain.name}: the router ${routerAddress} has no code on chain ${chainId}: fix chains.${chain.name}.router or the deployment file`);
  }
  const router = AutoPayLLM__factory.connect(routerAddress, provider);
  const tokenAddress = await router.paymentToken();
  const contract = new Contract(tokenAddress, ERC20_ABI, provider);
  const decimals = Number(await contract.getFunction("decimals")());
  if (decimals !== token.decimals) {
    throw new MonitorError(
      "CHAIN",
      `chains.${chain.name}: the router's payment token ${tokenAddress} has ${decimals} decimals but token.decimals is ${token.decimals}: fix token: in the config`,
    );
  }
  return {
    name: chain.name,
    chainId,
    provider,
    routerAddress,
    router,
    tokenAddress,
    token: {
      balanceOf: (account) => contract.getFunction("balanceOf")(account) as Promise<bigint>,
      allowance: (owner, spender) => contract.getFunction("allowance")(owner, spender) as Promise<bigint>,
    },
    events: new RouterEvents(provider, routerAddress, options.logChunkBlocks === undefined ? {} : { chunkBlocks: options.logChunkBlocks }),
  };
}
