/**
 * The contracts a dispute touches on one chain: the settlement router (`AutoPayLLM`), its arbiter (`UsageOracle`,
 * when deployed), and the payment token with its unit. Read-only handles; a signer connects per call.
 */
import { Contract, getAddress, type Provider } from "ethers";

import type { TokenUnit } from "../config/amount.js";
import type { AutoPayLLM, UsageOracle } from "../../typechain-types/index.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { DisputeError } from "./errors.js";

const ERC20_ABI = [
  "function symbol() view returns (string)",
  "function decimals() view returns (uint8)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address,address) view returns (uint256)",
  "function approve(address,uint256) returns (bool)",
];

export interface PaymentToken {
  readonly address: string;
  readonly unit: TokenUnit;
  readonly contract: Contract;
}

export interface DisputeChain {
  readonly provider: Provider;
  readonly chainId: number;
  readonly routerAddress: string;
  readonly router: AutoPayLLM;
  /** the arbiter of usage disputes, when the deployment has one */
  readonly oracleAddress?: string | undefined;
  readonly oracle?: UsageOracle | undefined;
  readonly token: PaymentToken;
}

export interface DisputeChainAddresses {
  readonly autoPayLLM: string;
  readonly usageOracle?: string | undefined;
}

/**
 * Connects to the router (and oracle) at `addresses` and reads the payment token's unit.
 *
 * @throws DisputeError INVALID_INPUT when an address holds no contract (wrong chain or a restarted local node).
 */
export async function openDisputeChain(provider: Provider, addresses: DisputeChainAddresses): Promise<DisputeChain> {
  const chainId = Number((await provider.getNetwork()).chainId);
  const routerAddress = getAddress(addresses.autoPayLLM);
  const oracleAddress = addresses.usageOracle === undefined ? undefined : getAddress(addresses.usageOracle);
  for (const [name, address] of [["AutoPayLLM", routerAddress], ["UsageOracle", oracleAddress]] as const) {
    if (address !== undefined && (await provider.getCode(address)) === "0x") {
      throw new DisputeError(
        "INVALID_INPUT",
        `${name} ${address} has no code on chain ${chainId}: check the deployments directory (or --router/--oracle) and the RPC`,
      );
    }
  }
  const router = AutoPayLLM__factory.connect(routerAddress, provider);
  const tokenAddress = await router.paymentToken();
  const contract = new Contract(tokenAddress, ERC20_ABI, provider);
  const [symbol, decimals] = await Promise.all([contract.getFunction("symbol")() as Promise<string>, contract.getFunction("decimals")() as Promise<bigint>]);
  return {
    provider,
    chainId,
    routerAddress,
    router,
    oracleAddress,
    oracle: oracleAddress === undefined ? undefined : UsageOracle__factory.connect(oracleAddress, provider),
    token: { address: tokenAddress, unit: { symbol, decimals: Number(decimals) }, contract },
  };
}
