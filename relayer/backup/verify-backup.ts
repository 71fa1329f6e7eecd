/**
 * `agentgpt litellm backup verify`: everything a backup claims, recomputed from its bytes and checked against the
 * chain. Per batch:
 * - the entry's size and SHA-256 against the manifest;
 * - the batch file on its own: receipts root from the receipts, batch id from chain + router + that root, every
 *   row from its receipts (./batch-checks.ts);
 * - the recorded reference: CID of the bytes, receipts root, rows root of the rows minus the rejected rows;
 * - the chain (unless offline): `batchInfo` and the BatchSettled/RowRejected logs of the batch, at the recorded
 *   block first: transaction, block and its hash, dataCid, both roots and the rejected rows must all match, and the
 *   file must rebuild the chain's roots and CID. The router is the configured one (or the deployment's), never the
 *   backup's own word.
 * The whole archive's SHA-256 is compared with its `.sha256` sidecar when there is one. With `dedupe`, Redis's ingest
 * dedupe records are compared with the backup's receipts (./dedupe-records.ts compareDedupe).
 */
import type { Readable } from "node:stream";

import type { BatchFile } from "../batcher/batch-file.js";
import type { RelayerConfig } from "../config/index.js";
import type { QueuedRecord, ReceiptStore } from "../queue/index.js";
import { checkBatchBytes, rowsRootOf } from "./batch-checks.js";
import { openBackupChain, readOnchainSettlement, type BackupChain } from "./chain-references.js";
import { compareDedupe, dedupeRecordsOf, type DedupeAgreement } from "./dedupe-records.js";
import { BackupError } from "./errors.js";
import type { BatchReference, Manifest, OnchainSettlement } from "./manifest.js";
import { createProgress } from "./progress.js";
import { openBackup, type BatchEntry } from "./read-backup.js";

export interface BatchVerdict {
  readonly chain: string;
  readonly batchId: string;
  readonly receipts: number;
  readonly rows: number;
  readonly cid: string;
  /** what is wrong, each naming the field and both values */
  readonly problems: string[];
  /** worth knowing, not wrong (e.g. released since the backup) */
  readonly notes: string[];
}

export interface VerifyReport {
  readonly name: string;
  readonly manifest: Manifest;
  /** the archive's SHA-256, and what its `.sha256` sidecar says (null: no sidecar) */
  readonly sha256: { readonly computed: string; readonly recorded: string | null };
  readonly checkedAgainstChain: boolean;
  readonly batches: BatchVerdict[];
  /** Redis's ingest dedupe records against the backup's receipts (null: not compared) */
  readonly dedupe: DedupeAgreement | null;
  /** problems of the archive as a whole */
  readonly problems: string[];
  readonly ok: boolean;
}

export interface VerifyOptions {
  readonly source: Readable;
  readonly name: string;
  readonly recordedSha256: string | null;
  /** to reach the chains; omit for an offline verification (hashes, roots and CIDs against the recorded references) */
  readonly config?: RelayerConfig | undefined;
  readonly deploymentsDir?: string | undefined;
  readonly progress?: boolean | undefined;
  /** compare Redis's ingest dedupe records with the backup's receipts (dedupe_ttl: the config's ingest.dedupe_ttl) */
  readonly dedupe?: { readonly store: ReceiptStore; readonly dedupeTtlMs: number; readonly now?: number } | undefined;
}

export async function verifyBackup(options: VerifyOptions): Promise<VerifyReport> {
  const chains = new Map<string, BackupChain>();
  try {
    const backup = await openBackup(options.source, options.name);
    const problems = [...backup.headerProblems];
    if (options.config !== undefined) {
      for (const recorded of backup.manifest.chains) {
        const config = options.config.chains.find((chain) => chain.name === recorded.name);
        if (config === undefined) {
          throw new BackupError("NO_CHAIN", `the backup has batches of chain "${recorded.name}", which ${options.config.files[0]} does not list under chains: add it, or verify with --offline`);
        }
        const chain = await openBackupChain(config, { deploymentsDir: options.deploymentsDir });
        chains.set(recorded.name, chain);
        if (chain.chainId !== recorded.chainId) problems.push(`chain ${recorded.name}: the backup was made on chain ${recorded.chainId}, the configured RPC serves chain ${chain.chainId}`);
        if (chain.router.toLowerCase() !== recorded.router.toLowerCase()) {
          problems.push(`chain ${recorded.name}: the backup names router ${recorded.router}, the configured router is ${chain.router} (checked against the configured one)`);
        }
      }
    }
    const progress = createProgress("verifying batches", backup.manifest.totals.batches, options.progress === undefined ? {} : { enabled: options.progress });
    const batches: BatchVerdict[] = [];
    // only what the Redis comparison needs, not whole files: a backup can hold millions of receipts
    const records: QueuedRecord[] = [];
    const keep = options.dedupe === undefined ? () => undefined : (file: BatchFile) => void records.push(...dedupeRecordsOf(file, options.dedupe!.dedupeTtlMs));
    for await (const entry of backup.entries()) {
      batches.push(await verifyEntry(entry, chains.get(entry.chain), keep));
      progress.tick();
    }
    progress.done();
    const finished = backup.finish();
    problems.push(...finished.problems);
    if (options.recordedSha256 !== null && options.recordedSha256 !== finished.sha256) {
      problems.push(`the archive's SHA-256 is ${finished.sha256}, its .sha256 file says ${options.recordedSha256}: the archive was altered or corrupted`);
    }
    const dedupe = options.dedupe === undefined ? null : await compareDedupe(options.dedupe.store, records, options.dedupe.now);
    const ok = problems.length === 0 && batches.every((batch) => batch.problems.length === 0) && dedupe?.agrees !== false;
    return {
      name: options.name,
      manifest: backup.manifest,
      sha256: { computed: finished.sha256, recorded: options.recordedSha256 },
      checkedAgainstChain: options.config !== undefined,
      batches,
      dedupe,
      problems,
      ok,
    };
  } finally {
    options.source.destroy();
    for (const chain of chains.values()) chain.close();
  }
}

async function verifyEntry(entry: BatchEntry, chain: BackupChain | undefined, keep: (file: BatchFile) => void): Promise<BatchVerdict> {
  const problems = [...entry.integrity];
  const notes: string[] = [];
  const checked = await checkBatchBytes(entry.bytes, { chain: entry.chain, batchId: entry.batchId });
  problems.push(...checked.problems);
  const file = checked.file;
  const reference = entry.reference;
  if (reference === undefined) problems.push("no reference in references.json");
  else problems.push(...againstReference(reference, checked.cid, checked.receiptsRoot, file));

  if (chain !== undefined) {
    const onchain = await readOnchainSettlement(chain, entry.batchId, reference?.settlement?.block);
    // only billed calls must have a dedupe record (a batch never settled is not restored as billed)
    if (onchain !== null && file !== null) keep(file);
    if (onchain === null) {
      if (reference?.settlement != null) {
        problems.push(
          `the chain has no batch ${entry.batchId} on router ${chain.router} (batchInfo status 0), but the backup records it settled in ` +
            `tx ${reference.settlement.txHash}, block ${reference.settlement.block}: a forged reference, or the wrong chain or router`,
        );
      } else {
        notes.push("not settled on-chain");
      }
    } else {
      if (reference?.settlement != null) problems.push(...recordedAgainstChain(reference.settlement, onchain));
      else if (reference !== undefined) notes.push(`settled on-chain since the backup (tx ${onchain.txHash}, block ${onchain.block})`);
      if (onchain.dataCid !== checked.cid) problems.push(`CID of the file's bytes ${checked.cid} is not the dataCid on-chain ${onchain.dataCid}`);
      if (checked.receiptsRoot !== null && checked.receiptsRoot !== onchain.receiptsRoot) {
        problems.push(`receipts root rebuilt from the receipts ${checked.receiptsRoot} is not the receiptsRoot on-chain ${onchain.receiptsRoot}`);
      }
      if (file !== null && file.callsFrom !== onchain.callsFrom) problems.push(`the file's callsFrom ${file.callsFrom} is not the callsFrom on-chain ${onchain.callsFrom}`);
      if (file !== null) {
        const rebuilt = rowsRootOf(file, onchain.rejected.map(([index]) => index));
        if (rebuilt !== onchain.rowsRoot) problems.push(`rows root rebuilt from the rows minus the rejected rows ${rebuilt} is not the rowsRoot on-chain ${onchain.rowsRoot}`);
      }
      if (reference?.settlement != null && reference.settlement.status !== onchain.status) notes.push(`${reference.settlement.status} at backup time, ${onchain.status} now`);
    }
  }
  return {
    chain: entry.chain,
    batchId: entry.batchId,
    receipts: file?.receipts.length ?? 0,
    rows: file?.rows.length ?? 0,
    cid: checked.cid,
    problems,
    notes,
  };
}

/** The file against what the backup recorded of it. */
function againstReference(reference: BatchReference, cid: string, receiptsRoot: string | null, file: BatchFile | null): string[] {
  const problems: string[] = [];
  if (reference.cid !== cid) problems.push(`CID of the file's bytes ${cid} is not the CID recorded in references.json ${reference.cid}`);
  if (receiptsRoot !== null && reference.receiptsRoot !== receiptsRoot) {
    problems.push(`receipts root rebuilt from the receipts ${receiptsRoot} is not the one recorded ${reference.receiptsRoot}`);
  }
  const settlement = reference.settlement;
  if (settlement === null) return problems;
  if (settlement.dataCid !== cid) problems.push(`CID of the file's bytes ${cid} is not the recorded dataCid ${settlement.dataCid}`);
  if (receiptsRoot !== null && settlement.receiptsRoot !== receiptsRoot) {
    problems.push(`receipts root rebuilt from the receipts ${receiptsRoot} is not the recorded on-chain receiptsRoot ${settlement.receiptsRoot}`);
  }
  if (file !== null) {
    const batchFile = file;
    const rejected = settlement.rejected.map(([index]) => index);
    const rebuilt = rowsRootOf(batchFile, rejected);
    if (rebuilt !== settlement.rowsRoot) problems.push(`rows root rebuilt from the rows minus the rejected rows [${rejected.join(", ")}] ${rebuilt} is not the recorded rowsRoot ${settlement.rowsRoot}`);
    if (settlement.callsFrom !== batchFile.callsFrom) problems.push(`the file's callsFrom ${batchFile.callsFrom} is not the recorded callsFrom ${settlement.callsFrom}`);
    const accepted = batchFile.rows.length - rejected.length;
    if (settlement.acceptedRows !== accepted) problems.push(`recorded acceptedRows ${settlement.acceptedRows}, but the file has ${batchFile.rows.length} rows and ${rejected.length} rejected`);
  }
  return problems;
}

/** The recorded settlement against what the chain says now. */
function recordedAgainstChain(recorded: OnchainSettlement, chain: OnchainSettlement): string[] {
  const problems: string[] = [];
  const fields = ["txHash", "block", "blockHash", "dataCid", "rowsRoot", "receiptsRoot", "settledAt", "releaseAt", "callsFrom", "rowCount", "acceptedRows", "escrowed"] as const;
  for (const field of fields) {
    if (String(recorded[field]) !== String(chain[field])) problems.push(`recorded ${field} ${recorded[field]}, the chain says ${chain[field]}`);
  }
  const show = (rows: OnchainSettlement["rejected"]) => (rows.length === 0 ? "none" : rows.map(([i, reason]) => `${i}:${reason}`).join(", "));
  if (show(recorded.rejected) !== show(chain.rejected)) problems.push(`recorded rejected rows ${show(recorded.rejected)}, the chain says ${show(chain.rejected)}`);
  return problems;
}
