/**
 * What a batch file proves about itself, recomputed from its bytes: the receipts root (from the receipts), the
 * batch id (from chain, router, call interval and that root), that every receipt's call started in the file's
 * usage bucket (`callsFrom`), every row (from its receipts: tokens, count, amount rounded up once,
 * payer, provider and model names), the rows root the contract computes (rows minus the rejected ones) and the CID.
 * Pure functions: the chain is compared elsewhere.
 */
import { getAddress } from "ethers";
import { ZodError } from "zod";

import { BatchFile, chargesOf, deriveBatchId, receiptsOutsideBucket } from "../batcher/batch-file.js";
import { contentId } from "../batcher/content-id.js";
import { buildReceiptsTree, receiptLeaf } from "../batcher/receipts-tree.js";
import { buildRowsTree } from "../batcher/rows-tree.js";

export interface CheckedBatch {
  /** null when the bytes are not a batch file at all */
  readonly file: BatchFile | null;
  /** CID of the bytes */
  readonly cid: string;
  /** receipts root recomputed from the receipts (null without a file) */
  readonly receiptsRoot: string | null;
  /** what is wrong with the file on its own, each naming the field */
  readonly problems: string[];
}

export async function checkBatchBytes(bytes: Uint8Array, expected: { chain: string; batchId: string }): Promise<CheckedBatch> {
  const cid = await contentId(bytes);
  let file: BatchFile;
  try {
    file = BatchFile.parse(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (error) {
    const reason = error instanceof SyntaxError ? `not JSON (${error.message})` : `not an agentgpt-batch-v2 file (${firstLine(error)})`;
    return { file: null, cid, receiptsRoot: null, problems: [reason] };
  }
  const problems: string[] = [];
  if (file.batchId !== expected.batchId) problems.push(`the file names batch ${file.batchId}, its entry ${expected.batchId}`);
  if (file.chain !== expected.chain) problems.push(`the file names chain "${file.chain}", its entry "${expected.chain}"`);
  let receiptsRoot: string | null = null;
  try {
    receiptsRoot = buildReceiptsTree(file.receipts.map(({ rowIndex, receipt }) => receiptLeaf(rowIndex, receipt))).root;
  } catch (error) {
    problems.push(`the receipts do not build a receipts tree (${firstLine(error)})`);
  }
  if (receiptsRoot !== null) {
    if (receiptsRoot !== file.receiptsRoot) {
      problems.push(`receiptsRoot ${file.receiptsRoot} in the file, but its receipts rebuild ${receiptsRoot}`);
    }
    const derived = deriveBatchId(file.chainId, file.router, file.callsFrom, receiptsRoot);
    if (derived !== file.batchId) problems.push(`batchId ${file.batchId}, but chain, router, callsFrom and the receipts derive ${derived}`);
  }
  problems.push(...bucketProblems(file));
  problems.push(...rowProblems(file));
  return { file, cid, receiptsRoot, problems };
}

/** `callsFrom` must start a usage bucket, and every receipt's call must have started in it. */
export function bucketProblems(file: BatchFile): string[] {
  const problems: string[] = [];
  if (file.callsFrom % file.usageBucket !== 0) problems.push(`callsFrom ${file.callsFrom} is not a multiple of usageBucket ${file.usageBucket}`);
  const outside = receiptsOutsideBucket(file.receipts.map(({ receipt }) => receipt), file.callsFrom, file.usageBucket);
  if (outside.length > 0) {
    problems.push(`${outside.length} receipt(s) started outside [callsFrom ${file.callsFrom}, +${file.usageBucket} s): ${outside.slice(0, 5).join(", ")}`);
  }
  return problems;
}

/** Every row must be exactly the aggregate of the receipts that point at it. */
export function rowProblems(file: BatchFile): string[] {
  const problems: string[] = [];
  const sums = file.rows.map(() => ({ tokens: 0n, milli: 0n, count: 0 }));
  file.rows.forEach((row, position) => {
    if (row.index !== position) problems.push(`row ${position}: index field says ${row.index}`);
  });
  for (const { rowIndex, receipt } of file.receipts) {
    const row = file.rows[rowIndex];
    const sum = sums[rowIndex];
    if (row === undefined || sum === undefined) {
      problems.push(`receipt ${receipt.id} points at row ${rowIndex}, which does not exist`);
      continue;
    }
    sum.tokens += BigInt(receipt.tokens);
    sum.milli += BigInt(receipt.amountMilli);
    sum.count += 1;
    if (!sameAddress(receipt.payer, row.user) || receipt.provider !== row.providerName || receipt.model !== row.modelName) {
      problems.push(`receipt ${receipt.id} (${receipt.payer}, ${receipt.provider}/${receipt.model}) is not of row ${rowIndex} (${row.user}, ${row.providerName}/${row.modelName})`);
    }
  }
  file.rows.forEach((row, i) => {
    const sum = sums[i]!;
    if (sum.count !== row.receipts) problems.push(`row ${i}: ${row.receipts} receipts recorded, ${sum.count} in the file`);
    if (BigInt(row.tokens) !== sum.tokens) problems.push(`row ${i}: ${row.tokens} tokens, its receipts add up to ${sum.tokens}`);
    const amount = (sum.milli + 999n) / 1000n;
    if (BigInt(row.amount) !== amount) problems.push(`row ${i}: amount ${row.amount}, its receipts price it at ${amount} (sum rounded up once)`);
  });
  return problems;
}

/** The rows root `AutoPayLLM` computes for this file when `rejected` rows were rejected. */
export function rowsRootOf(file: BatchFile, rejected: Iterable<number>): string {
  return buildRowsTree(chargesOf(file), new Set(rejected)).root;
}

/** Sum of the rows' amounts, in token units. */
export function amountOf(file: BatchFile): bigint {
  return file.rows.reduce((sum, row) => sum + BigInt(row.amount), 0n);
}

function sameAddress(a: string, b: string): boolean {
  try {
    return getAddress(a) === getAddress(b);
  } catch {
    return false;
  }
}

function firstLine(error: unknown): string {
  if (error instanceof ZodError) {
    const issue = error.issues[0];
    return issue === undefined ? "invalid" : `${issue.path.join(".") || "(top level)"}: ${issue.message}`;
  }
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
