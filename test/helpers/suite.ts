/**
 * Shared fixture for the contract tests: a deployed AGPT token and AutoPayLLM router with roles, two providers,
 * two priced models and funded payers, plus small helpers to build rows and settle them.
 */
import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { AbiCoder, keccak256, type ContractTransactionReceipt } from "ethers";

import { buildRowsTree, type Charge, type RowsTree } from "../../relayer/batcher/rows-tree.js";
import type { AGPTToken, AutoPayLLM } from "../../typechain-types/index.js";

export const AGPT = 10n ** 18n;
/** gpt-4-turbo cap: 0.12 AGPT per 1k tokens (the seed's mission_critical budget). */
export const GPT4_PRICE = (12n * AGPT) / 100n;
/** mixtral cap: 0.0085 AGPT per 1k tokens (the seed's cost_optimized budget). */
export const MIXTRAL_PRICE = (85n * AGPT) / 10_000n;
export const DAY = 24n * 3600n;

export enum RejectReason {
  None,
  UnknownProvider,
  ModelNotPriced,
  ZeroAmount,
  InvalidPayer,
  OverPriceCap,
  OverDailyCap,
  OverModelBudget,
  InsufficientFunds,
}

export enum BatchStatus {
  None,
  Escrowed,
  Released,
}

export enum DisputeStatus {
  None,
  Open,
  Resolved,
  Expired,
}

export interface Suite {
  token: AGPTToken;
  router: AutoPayLLM;
  routerAddress: string;
  admin: HardhatEthersSigner;
  relayer: HardhatEthersSigner;
  arbiter: HardhatEthersSigner;
  pauser: HardhatEthersSigner;
  stranger: HardhatEthersSigner;
  payers: HardhatEthersSigner[];
  payees: HardhatEthersSigner[];
  /** provider ids */
  openai: number;
  groq: number;
  /** model ids */
  gpt4: number;
  mixtral: number;
}

export async function deploySuite(ethers: HardhatEthers): Promise<Suite> {
  const [admin, relayer, arbiter, pauser, stranger, payeeA, payeeB, ...rest] = await ethers.getSigners();
  const payers = rest.slice(0, 4);
  const token = await ethers.deployContract("AGPTToken", [admin!.address, 1_000_000_000n * AGPT]);
  const router = await ethers.deployContract("AutoPayLLM", [await token.getAddress(), admin!.address]);
  const routerAddress = await router.getAddress();
  await router.grantRole(await router.RELAYER_ROLE(), relayer!.address);
  await router.grantRole(await router.ARBITER_ROLE(), arbiter!.address);
  await router.grantRole(await router.PAUSER_ROLE(), pauser!.address);
  await router.registerProvider("openai", payeeA!.address);
  await router.registerProvider("groq", payeeB!.address);
  await router.setModelPrice("gpt-4-turbo", GPT4_PRICE);
  await router.setModelPrice("mixtral-8x22b", MIXTRAL_PRICE);
  for (const payer of payers) {
    await token.transfer(payer.address, 10_000n * AGPT);
    await token.connect(payer).approve(routerAddress, 1_000n * AGPT);
    await router.connect(payer).deposit(1_000n * AGPT);
  }
  return {
    token,
    router,
    routerAddress,
    admin: admin!,
    relayer: relayer!,
    arbiter: arbiter!,
    pauser: pauser!,
    stranger: stranger!,
    payers,
    payees: [payeeA!, payeeB!],
    openai: 1,
    groq: 2,
    gpt4: 1,
    mixtral: 2,
  };
}

/** The most the contract accepts for `tokens` at `pricePer1k`: ceil(tokens * price / 1000). */
export function priceCap(tokens: bigint, pricePer1k: bigint): bigint {
  return (tokens * pricePer1k + 999n) / 1000n;
}

/** A row charging exactly the price cap. */
export function row(user: string, provider: number, model: number, tokens: bigint, pricePer1k: bigint): Charge {
  return { user, provider, model, tokens, amount: priceCap(tokens, pricePer1k) };
}

let batchCounter = 0;

export interface Settlement {
  batchId: string;
  receipt: ContractTransactionReceipt;
  /** index -> reason, from RowRejected events */
  rejected: Map<number, RejectReason>;
  tree: RowsTree;
  rowsRoot: string;
  escrowed: bigint;
  releaseAt: bigint;
  /** start of the usage bucket the batch committed */
  callsFrom: bigint;
  /** the rows as submitted */
  charges: Charge[];
}

export const CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

/**
 * Settles `charges` as the relayer and decodes what happened: with `callsFrom`, through `settleBatchAt` (the calls'
 * usage bucket), else through `settleBatch` (the bucket of the settlement time).
 */
export async function settle(
  suite: Suite,
  charges: Charge[],
  options: { batchId?: string; signer?: HardhatEthersSigner; callsFrom?: bigint; receiptsRoot?: string } = {},
): Promise<Settlement> {
  const batchId = options.batchId ?? `0x${(++batchCounter).toString(16).padStart(64, "0")}`;
  const signer = options.signer ?? suite.relayer;
  const root = options.receiptsRoot ?? receiptsRootOf(batchId);
  const router = suite.router.connect(signer);
  const tx =
    options.callsFrom === undefined
      ? await router.settleBatch(batchId, charges, root, CID)
      : await router.settleBatchAt(batchId, charges, root, CID, options.callsFrom);
  const receipt = (await tx.wait())!;
  const rejected = new Map<number, RejectReason>();
  let rowsRoot = "";
  let escrowed = 0n;
  let releaseAt = 0n;
  let callsFrom = 0n;
  for (const log of receipt.logs) {
    const parsed = suite.router.interface.parseLog(log);
    if (parsed?.name === "RowRejected") rejected.set(Number(parsed.args.index), Number(parsed.args.reason));
    if (parsed?.name === "BatchSettled") {
      rowsRoot = parsed.args.rowsRoot as string;
      escrowed = parsed.args.escrowed as bigint;
      releaseAt = parsed.args.releaseAt as bigint;
      callsFrom = parsed.args.callsFrom as bigint;
    }
  }
  const tree = buildRowsTree(charges, new Set(rejected.keys()));
  return { batchId, receipt, rejected, tree, rowsRoot, escrowed, releaseAt, callsFrom, charges };
}

export function receiptsRootOf(batchId: string): string {
  // Any non-zero value unique to the batch (a receipts root settles once): the receipts tree is the relayer's.
  return keccak256(AbiCoder.defaultAbiCoder().encode(["string", "bytes32"], ["receipts", batchId]));
}

/** A settled row named in a dispute. */
export interface RowRef {
  batchId: string;
  index: number;
  charge: Charge;
  proof: string[];
}

/** The rows `[batch, index]` as a dispute names them: with their proofs, ordered by (batchId, index). */
export function rowRefs(rows: Array<[Settlement, number]>): RowRef[] {
  return rows
    .map(([batch, index]) => ({ batchId: batch.batchId, index, charge: batch.charges[index]!, proof: batch.tree.proof(index) }))
    .sort((a, b) => {
      const x = BigInt(a.batchId);
      const y = BigInt(b.batchId);
      return x === y ? a.index - b.index : x < y ? -1 : 1;
    });
}

/** keccak256(abi.encode(payer, provider, model, callsFrom)): the key of an interval's dispute state. */
export function intervalKey(payer: string, provider: number | bigint, model: number | bigint, callsFrom: bigint): string {
  return keccak256(AbiCoder.defaultAbiCoder().encode(["address", "uint32", "uint32", "uint256"], [payer, provider, model, callsFrom]));
}

/** The id the next dispute of that interval gets. */
export async function nextDisputeId(
  suite: Pick<Suite, "router">,
  payer: string,
  provider: number | bigint,
  model: number | bigint,
  callsFrom: bigint,
): Promise<string> {
  const { disputes } = await suite.router.intervalInfo(payer, provider, model, callsFrom);
  return keccak256(AbiCoder.defaultAbiCoder().encode(["bytes32", "uint256"], [intervalKey(payer, provider, model, callsFrom), disputes]));
}

/** token balance of the router == deposits + escrow + credits + bonds (and the contract's own totals agree). */
export async function expectSolvent(suite: Suite): Promise<{ balance: bigint; liabilities: bigint }> {
  const balance = await suite.token.balanceOf(suite.routerAddress);
  const liabilities = await suite.router.totalLiabilities();
  if (balance !== liabilities) throw new Error(`router balance ${balance} != liabilities ${liabilities}`);
  return { balance, liabilities };
}
