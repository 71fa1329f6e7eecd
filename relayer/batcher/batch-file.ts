/**
 * The batch file: everything needed to audit a batch and to prove any of its rows or receipts, written to the
 * archive before anything is sent. Its CID goes on-chain as `dataCid`; its receipts root as `receiptsRoot`; its
 * `callsFrom` as the batch's call interval (`settleBatchAt`).
 *
 * Every receipt of a batch started its call in one usage bucket: `callsFrom <= startTime / 1000 < callsFrom +
 * usageBucket` (unix seconds; `usageBucket` is the router's, recorded in the file).
 *
 * `batchId = keccak256(abi.encode("agentgpt/batch/v2", chainId, router, callsFrom, receiptsRoot))`: derived from the
 * content only, so a batch rebuilt from the same receipts after a crash has the same id, and the contract settles an
 * id once (and a receipts root once).
 */
import { AbiCoder, keccak256 } from "ethers";
import { z } from "zod";

import { Receipt } from "../queue/index.js";
import { aggregate, type Registry, type Row } from "./aggregate.js";
import { contentId } from "./content-id.js";
import { callsFromOf } from "./usage-bucket.js";
import { RECEIPT_LEAF_ENCODING, buildReceiptsTree, receiptLeaf } from "./receipts-tree.js";
import { ROW_LEAF_ENCODING, rowLeaf, type Charge } from "./rows-tree.js";

export const BATCH_FILE_FORMAT = "agentgpt-batch-v2";

const uint = z.string().regex(/^(0|[1-9]\d*)$/);
const hex32 = z.string().regex(/^0x[0-9a-f]{64}$/);

export const BatchFile = z.object({
  format: z.literal(BATCH_FILE_FORMAT),
  chain: z.string(),
  chainId: z.number().int().positive(),
  router: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  batchId: hex32,
  /** epoch ms when the receipts were sealed into this batch */
  sealedAt: z.number().int(),
  /** start (unix seconds) of the usage bucket in which every call of the batch started; committed on-chain */
  callsFrom: z.number().int().min(0),
  /** the router's usage bucket length (seconds) when the batch was built */
  usageBucket: z.number().int().positive(),
  rowLeafEncoding: z.array(z.string()),
  receiptLeafEncoding: z.array(z.string()),
  rows: z.array(
    z.object({
      index: z.number().int().min(0),
      user: z.string(),
      provider: z.number().int().min(0),
      model: z.number().int().min(0),
      tokens: uint,
      amount: uint,
      providerName: z.string(),
      modelName: z.string(),
      receipts: z.number().int().positive(),
    }),
  ),
  receipts: z.array(z.object({ rowIndex: z.number().int().min(0), receipt: Receipt })),
  receiptsRoot: hex32,
});
export type BatchFile = z.output<typeof BatchFile>;

export interface BatchContext {
  chain: string;
  chainId: number;
  router: string;
  /** the router's usage bucket length (seconds) */
  usageBucket: number;
  registry: Registry;
}

export interface BuiltBatch {
  file: BatchFile;
  /** the file's bytes as written to the archive */
  bytes: Uint8Array;
  cid: string;
  charges: Charge[];
}

export function deriveBatchId(chainId: number, router: string, callsFrom: number, receiptsRoot: string): string {
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(
      ["string", "uint256", "address", "uint256", "bytes32"],
      ["agentgpt/batch/v2", chainId, router, callsFrom, receiptsRoot],
    ),
  );
}

/** Receipts of `receipts` whose call did not start in the bucket `[callsFrom, callsFrom + usageBucket)`, by id. */
export function receiptsOutsideBucket(receipts: Iterable<Receipt>, callsFrom: number, usageBucket: number): string[] {
  const outside: string[] = [];
  for (const receipt of receipts) if (callsFromOf(receipt.startTime, usageBucket) !== callsFrom) outside.push(receipt.id);
  return outside;
}

/** Builds the batch of `receipts`, which must all have started their calls in the usage bucket `callsFrom`. */
export async function buildBatch(receipts: readonly Receipt[], sealedAt: number, callsFrom: number, context: BatchContext): Promise<BuiltBatch> {
  if (receipts.length === 0) throw new Error("a batch needs at least one receipt");
  const outside = receiptsOutsideBucket(receipts, callsFrom, context.usageBucket);
  if (outside.length > 0) {
    throw new Error(`${outside.length} receipt(s) of the batch did not start in the usage bucket ${callsFrom} (+${context.usageBucket} s): ${outside.slice(0, 3).join(", ")}`);
  }
  const { rows, receipts: ordered } = aggregate(receipts, context.registry);
  const tree = buildReceiptsTree(ordered.map(({ rowIndex, receipt }) => receiptLeaf(rowIndex, receipt)));
  const receiptsRoot = tree.root;
  const file: BatchFile = {
    format: BATCH_FILE_FORMAT,
    chain: context.chain,
    chainId: context.chainId,
    router: context.router,
    batchId: deriveBatchId(context.chainId, context.router, callsFrom, receiptsRoot),
    sealedAt,
    callsFrom,
    usageBucket: context.usageBucket,
    rowLeafEncoding: [...ROW_LEAF_ENCODING],
    receiptLeafEncoding: [...RECEIPT_LEAF_ENCODING],
    rows: rows.map((row, index) => serializeRow(index, row)),
    receipts: ordered,
    receiptsRoot,
  };
  return finish(file);
}

/** Bytes, CID and charges of an existing file (e.g. read back from the archive). */
export async function finish(file: BatchFile): Promise<BuiltBatch> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(file)}\n`);
  return { file, bytes, cid: await contentId(bytes), charges: chargesOf(file) };
}

export function chargesOf(file: BatchFile): Charge[] {
  return file.rows.map((row) => ({
    user: row.user,
    provider: row.provider,
    model: row.model,
    tokens: BigInt(row.tokens),
    amount: BigInt(row.amount),
  }));
}

/** `[index, user, provider, model, tokens, amount]` of every row: the inputs of the rows tree's leaves. */
export function rowLeaves(file: BatchFile) {
  return chargesOf(file).map((charge, index) => rowLeaf(index, charge));
}

function serializeRow(index: number, row: Row): BatchFile["rows"][number] {
  return {
    index,
    user: row.user,
    provider: row.provider,
    model: row.model,
    tokens: row.tokens.toString(),
    amount: row.amount.toString(),
    providerName: row.providerName,
    modelName: row.modelName,
    receipts: row.receipts,
  };
}
