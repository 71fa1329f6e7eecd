/**
 * The contract suite deployed on a `hardhat node` over JSON-RPC (as the relayer sees a real chain): AGPT, the
 * router, three providers, three priced models, funded payers, and the settler's key holding RELAYER_ROLE.
 */
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";

import { AGPTToken__factory, AutoPayLLM__factory, type AGPTToken, type AutoPayLLM } from "../../typechain-types/index.js";
import { NODE_KEYS } from "./hardhat-node.js";

export const AGPT = 10n ** 18n;
export const PRICES: Record<string, bigint> = {
  "gpt-4-turbo": (12n * AGPT) / 100n, // 0.12 AGPT / 1k tokens
  "claude-3-opus": (9n * AGPT) / 100n,
  "mixtral-8x22b": (85n * AGPT) / 10_000n,
};
export const PROVIDERS = ["openai", "anthropic", "groq"] as const;

export interface ChainSuite {
  provider: JsonRpcProvider;
  admin: NonceManager;
  token: AGPTToken;
  router: AutoPayLLM;
  routerAddress: string;
  chainId: number;
  /** the settler's key (RELAYER_ROLE) */
  relayerKey: string;
  payers: Wallet[];
  payees: Wallet[];
}

export async function deployChainSuite(url: string, options: { payers?: number; deposit?: bigint } = {}): Promise<ChainSuite> {
  const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, pollingInterval: 100 });
  const chainId = Number((await provider.getNetwork()).chainId);
  const adminWallet = new Wallet(NODE_KEYS[0], provider);
  const admin = new NonceManager(adminWallet);
  const relayerKey = NODE_KEYS[1];
  const token = await new AGPTToken__factory(admin).deploy(adminWallet.address, 10n ** 12n * AGPT);
  await token.waitForDeployment();
  const router = await new AutoPayLLM__factory(admin).deploy(await token.getAddress(), adminWallet.address);
  await router.waitForDeployment();
  const routerAddress = await router.getAddress();
  await (await router.grantRole(await router.RELAYER_ROLE(), new Wallet(relayerKey).address)).wait();
  const payees = PROVIDERS.map((name) => new Wallet(`0x${Buffer.from(`payee-${name}`).toString("hex").padEnd(64, "1")}`, provider));
  for (const [i, name] of PROVIDERS.entries()) await (await router.registerProvider(name, payees[i]!.address)).wait();
  for (const [model, price] of Object.entries(PRICES)) await (await router.setModelPrice(model, price)).wait();

  const payers: Wallet[] = [];
  const count = options.payers ?? 4;
  const deposit = options.deposit ?? 10_000n * AGPT;
  await (await token.approve(routerAddress, deposit * BigInt(count))).wait();
  for (let i = 0; i < count; i++) {
    const payer = new Wallet(`0x${(BigInt(i + 1) * 0x1234567n + 7n).toString(16).padStart(64, "a")}`, provider);
    payers.push(payer);
    await (await router.depositFor(payer.address, deposit)).wait();
  }
  return { provider, admin, token, router, routerAddress, chainId, relayerKey, payers, payees };
}
