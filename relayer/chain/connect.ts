/**
 * Typed handles on a deployed suite: the contracts at the deployment's addresses, checked to exist on the chain,
 * plus the payment token and its unit (symbol, decimals) read from the chain.
 */
import { Contract, type ContractRunner, type Provider } from "ethers";

import type { AGPTToken, AgentGovernor, AgentTimelock, AutoPayLLM } from "../../typechain-types/index.js";
import { AGPTToken__factory } from "../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { loadDeployment, type Deployment, type SuiteAddresses } from "./deployment.js";
import { ChainError } from "./errors.js";
import type { TokenUnit } from "./tokens.js";

/** The ERC-20 surface the suite uses on a payment token that may not be AGPT. */
export interface PaymentToken {
  getAddress(): Promise<string>;
  symbol(): Promise<string>;
  decimals(): Promise<bigint>;
  balanceOf(account: string): Promise<bigint>;
  allowance(owner: string, spender: string): Promise<bigint>;
}

const ERC20_ABI = [
  "function symbol() view returns (string)",
  "function decimals() view returns (uint8)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address,address) view returns (uint256)",
  "function approve(address,uint256) returns (bool)",
];

export interface Suite {
  deployment: Deployment;
  /** Votes token (AgentGovernor counts its delegated balances). */
  agpt: AGPTToken;
  autoPayLLM: AutoPayLLM;
  timelock: AgentTimelock;
  governor: AgentGovernor;
  /** What `AutoPayLLM` settles in: the AGPT above, or an existing ERC-20. */
  paymentToken: PaymentToken & Contract;
  paymentUnit: TokenUnit;
  votesUnit: TokenUnit;
}

/**
 * Connects typed contracts for `deployment` through `runner` (a provider for reads, a signer to send).
 *
 * @throws ChainError STALE_DEPLOYMENT when a recorded address holds no code (a restarted local node, or the
 * deployments directory of another chain).
 */
export async function connectSuite(deployment: Deployment, runner: ContractRunner): Promise<Suite> {
  const provider = runner.provider ?? (runner as Provider);
  await assertDeployed(deployment, provider);
  const agpt = AGPTToken__factory.connect(deployment.addresses.agpt, runner);
  const autoPayLLM = AutoPayLLM__factory.connect(deployment.addresses.autoPayLLM, runner);
  const paymentToken = new Contract(await autoPayLLM.paymentToken(), ERC20_ABI, runner) as PaymentToken & Contract;
  const [paymentSymbol, paymentDecimals, votesSymbol, votesDecimals] = await Promise.all([
    paymentToken.symbol(),
    paymentToken.decimals(),
    agpt.symbol(),
    agpt.decimals(),
  ]);
  return {
    deployment,
    agpt,
    autoPayLLM,
    timelock: AgentTimelock__factory.connect(deployment.addresses.timelock, runner),
    governor: AgentGovernor__factory.connect(deployment.addresses.governor, runner),
    paymentToken,
    paymentUnit: { symbol: paymentSymbol, decimals: Number(paymentDecimals) },
    votesUnit: { symbol: votesSymbol, decimals: Number(votesDecimals) },
  };
}

/** Loads the deployment of the runner's chain and connects it: the one call the relayer and the CLI need. */
export async function loadSuite(
  runner: ContractRunner,
  options: { deploymentsDir?: string; networkName?: string } = {},
): Promise<Suite> {
  const provider = runner.provider ?? (runner as Provider);
  const chainId = Number((await provider.getNetwork()).chainId);
  return connectSuite(await loadDeployment(chainId, options), runner);
}

async function assertDeployed(deployment: Deployment, provider: Provider): Promise<void> {
  const entries = Object.entries(deployment.addresses) as [keyof SuiteAddresses, string][];
  const codes = await Promise.all(entries.map(([, address]) => provider.getCode(address)));
  const missing = entries.filter((_, i) => codes[i] === "0x").map(([name, address]) => `${name} ${address}`);
  if (missing.length > 0) {
    throw new ChainError(
      "STALE_DEPLOYMENT",
      `${deployment.dir} records contracts that chain ${deployment.chainId} does not have (${missing.join(", ")}): ` +
        `if the local node was restarted, deploy again with \`npm run deploy -- --network localhost\``,
    );
  }
}
