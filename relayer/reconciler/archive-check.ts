/**
 * The receipts archive against the chain, batch by batch: the file is the one whose CID is on-chain, its rows are
 * the rows submitted (calldata) and rebuild the rows root, its receipts rebuild the receipts root, and every row's
 * receipts add up to the row's tokens and amount. Any difference is a problem in the relayer's own books.
 */
import { getAddress } from "ethers";

import { chargesOf, type BatchFile } from "../batcher/batch-file.js";
import { buildReceiptsTree, receiptLeaf } from "../batcher/receipts-tree.js";
import { buildRowsTree, type Charge } from "../batcher/rows-tree.js";
import type { SettledBatch } from "../disputes/settled-batch.js";

export interface ArchivedRow {
  readonly receipts: number;
  readonly tokens: bigint;
  /** ceil(sum of the receipts' amountMilli / 1000): what the row should charge */
  readonly amount: bigint;
}

export interface ArchiveCheck {
  /** ok: the file backs the chain; missing: no file; mismatch: it does not */
  readonly status: "ok" | "missing" | "mismatch";
  readonly problems: readonly string[];
  /** the rows as settled: from calldata, else from the file when its rows root matches the chain's */
  readonly charges: readonly Charge[] | null;
  /** per row index, from the archived receipts */
  readonly rows: ReadonlyMap<number, ArchivedRow>;
  readonly names: ReadonlyMap<number, { provider: string; model: string }>;
}

export function checkArchive(batch: SettledBatch, submitted: readonly Charge[] | null, file: BatchFile | null, fileProblem?: string): ArchiveCheck {
  if (file === null) {
    return { status: "missing", problems: [fileProblem ?? "no batch file"], charges: submitted, rows: new Map(), names: new Map() };
  }
  const problems: string[] = [];
  const fileCharges = chargesOf(file);
  const root = buildRowsTree(fileCharges, new Set(batch.rejected.keys())).root;
  const rootMatches = root.toLowerCase() === batch.rowsRoot.toLowerCase();
  if (!rootMatches) problems.push(`the file's rows rebuild root ${root}, the chain has ${batch.rowsRoot}`);
  if (submitted !== null) {
    if (submitted.length !== fileCharges.length) problems.push(`the chain has ${submitted.length} rows, the file ${fileCharges.length}`);
    submitted.forEach((charge, index) => {
      const other = fileCharges[index];
      if (other !== undefined && !sameCharge(charge, other)) problems.push(`row ${index} differs between the chain and the file`);
    });
  }
  if (file.receiptsRoot.toLowerCase() !== batch.receiptsRoot.toLowerCase()) {
    problems.push(`the file's receipts root ${file.receiptsRoot} is not the chain's ${batch.receiptsRoot}`);
  } else if (file.receipts.length > 0) {
    const rebuilt = buildReceiptsTree(file.receipts.map(({ rowIndex, receipt }) => receiptLeaf(rowIndex, receipt))).root;
    if (rebuilt.toLowerCase() !== file.receiptsRoot.toLowerCase()) problems.push(`the file's receipts rebuild root ${rebuilt}, not ${file.receiptsRoot}`);
  }

  const sums = new Map<number, { receipts: number; tokens: bigint; milli: bigint }>();
  for (const { rowIndex, receipt } of file.receipts) {
    const row = file.rows[rowIndex];
    if (row === undefined) {
      problems.push(`receipt ${receipt.id} points at row ${rowIndex}, which the file does not have`);
      continue;
    }
    if (receipt.payer.toLowerCase() !== row.user.toLowerCase() || receipt.provider !== row.providerName || receipt.model !== row.modelName) {
      problems.push(`receipt ${receipt.id} (${receipt.payer}, ${receipt.provider}, ${receipt.model}) is not of row ${rowIndex}`);
    }
    const sum = sums.get(rowIndex) ?? { receipts: 0, tokens: 0n, milli: 0n };
    sum.receipts += 1;
    sum.tokens += BigInt(receipt.tokens);
    sum.milli += BigInt(receipt.amountMilli);
    sums.set(rowIndex, sum);
  }
  const rows = new Map<number, ArchivedRow>();
  const names = new Map<number, { provider: string; model: string }>();
  file.rows.forEach((row, index) => {
    names.set(index, { provider: row.providerName, model: row.modelName });
    const sum = sums.get(index) ?? { receipts: 0, tokens: 0n, milli: 0n };
    const archived = { receipts: sum.receipts, tokens: sum.tokens, amount: (sum.milli + 999n) / 1000n };
    rows.set(index, archived);
    if (archived.receipts !== row.receipts) problems.push(`row ${index} counts ${row.receipts} receipts, the file holds ${archived.receipts}`);
    if (archived.tokens !== BigInt(row.tokens)) problems.push(`row ${index} bills ${row.tokens} tokens, its receipts add up to ${archived.tokens}`);
    if (archived.amount !== BigInt(row.amount)) problems.push(`row ${index} charges ${row.amount}, its receipts price to ${archived.amount}`);
  });
  const charges = submitted ?? (rootMatches ? fileCharges : null);
  return { status: problems.length === 0 ? "ok" : "mismatch", problems, charges, rows, names };
}

function sameCharge(a: Charge, b: Charge): boolean {
  return getAddress(a.user) === getAddress(b.user) && a.provider === b.provider && a.model === b.model && a.tokens === b.tokens && a.amount === b.amount;
}
