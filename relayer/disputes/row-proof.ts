/**
 * The Merkle proof of one row of a settled batch, built from the batch file exactly as the contract builds its rows
 * tree (rejected rows left out, indexes kept), and checked against the rows root on-chain before anything is sent.
 */
import { chargesOf, type BatchFile } from "../batcher/batch-file.js";
import { buildRowsTree, type Charge } from "../batcher/rows-tree.js";
import { DisputeError } from "./errors.js";
import type { SettledBatch } from "./settled-batch.js";

export interface ProvenRow {
  readonly index: number;
  readonly charge: Charge;
  readonly proof: string[];
  /** the row as the batch file records it (names, receipt count) */
  readonly row: BatchFile["rows"][number];
}

export function proveRow(file: BatchFile, batch: Pick<SettledBatch, "batchId" | "rowsRoot" | "rejected">, index: number): ProvenRow {
  const row = file.rows[index];
  if (row === undefined || row.index !== index) {
    throw new DisputeError(
      "NO_ROW",
      `--row ${index}: batch ${batch.batchId} has rows 0 to ${file.rows.length - 1}` + (row === undefined ? "" : " (the file's row order is broken)"),
    );
  }
  const reason = batch.rejected.get(index);
  if (reason !== undefined) {
    throw new DisputeError(
      "ROW_REJECTED",
      `--row ${index}: the contract rejected this row (${reason}) and charged nothing for it: there is nothing to dispute`,
    );
  }
  const charges = chargesOf(file);
  const tree = buildRowsTree(charges, new Set(batch.rejected.keys()));
  if (tree.root.toLowerCase() !== batch.rowsRoot.toLowerCase()) {
    throw new DisputeError(
      "BATCH_FILE_MISMATCH",
      `the rows of the batch file rebuild root ${tree.root}, but batch ${batch.batchId} settled with rows root ${batch.rowsRoot}: ` +
        "the file or the rejected rows are not what the chain has",
    );
  }
  return { index, charge: charges[index]!, proof: tree.proof(index), row };
}
