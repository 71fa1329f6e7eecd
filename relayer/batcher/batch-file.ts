/**
 * The batch file: everything needed to audit a batch and to prove any of its rows or receipts, written to the
 * archive before anything is sent. Its CID goes on-chain as `dataCid`; its receipts root as `receiptsRoot`.
 *
 * `batchId = keccak256(abi.encode("agentgpt/batch/v1", chainId, router, receiptsRoot))`: derived from the content
 * only, so a batch rebuilt from the same receipts after a crash has the same id, and the contract settles an id once.
 */
import { AbiCoder, keccak256 } from "ethers";
import { z } from "zod";

import { Receipt } from "../queue/index.js";
import { aggregate, type Registry, type Row } from "./aggregate.js";
import { contentId } from "./content-id.js";
import { RECEIPT_LEAF_ENCODING, buildReceiptsTree, receiptLeaf } from "./receipts-tree.js";
import { ROW_LEAF_ENCODING, rowLeaf, type Charge } from "./rows-tree.js";

export const BATCH_FILE_FORMAT = "agentgpt-batch-v1";

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
  registry: Registry;
}

export interface BuiltBatch {
  file: BatchFile;
  /** the file's bytes as written to the archive */
  bytes: Uint8Array;
  cid: string;
  charges: Charge[];
}

export function deriveBatchId(chainId: number, router: string, receiptsRoot: string): string {
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(
      ["string", "uint256", "address", "bytes32"],
      ["agentgpt/batch/v1", chainId, router, receiptsRoot],
    ),
  );
}

export async function buildBatch(receipts: readonly Receipt[], sealedAt: number, context: BatchContext): Promise<BuiltBatch> {
  if (receipts.length === 0) throw new Error("a batch needs at least one receipt");
  const { rows, receipts: ordered } = aggregate(receipts, context.registry);
  const tree = buildReceiptsTree(ordered.map(({ rowIndex, receipt }) => receiptLeaf(rowIndex, receipt)));
  const receiptsRoot = tree.root;
  const file: BatchFile = {
    format: BATCH_FILE_FORMAT,
    chain: context.chain,
    chainId: context.chainId,
    router: context.router,
    batchId: deriveBatchId(context.chainId, context.router, receiptsRoot),
    sealedAt,
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
