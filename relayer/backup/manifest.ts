/**
 * The backup format, version 1: a gzip-compressed ustar archive (`agentgpt-backup-<UTC time>.tar.gz`) holding
 *
 *   manifest.json                      what the backup holds: every other entry with its size and SHA-256
 *   references.json                    the on-chain reference of every batch, as the chain said at backup time
 *   batches/<chain>/<batchId>.json     each batch file, byte for byte as the relayer archived it (its receipts in it)
 *
 * in that order, so a reader learns the expected hashes before the data. Beside the archive, `<name>.sha256` holds
 * the SHA-256 of the archive itself (`sha256sum -c` reads it). Nothing in a backup is secret: batch files are
 * published by CID anyway; keys and tokens are never included.
 */
import { z } from "zod";

import { REJECT_REASONS } from "../settler/outcome.js";

export const BACKUP_FORMAT = "agentgpt-backup-v1";
export const REFERENCES_FORMAT = "agentgpt-backup-references-v1";
export const MANIFEST_PATH = "manifest.json";
export const REFERENCES_PATH = "references.json";
export const BACKUP_NAME_PATTERN = /^agentgpt-backup-\d{8}T\d{6}Z(-\d+)?\.tar\.gz$/;

const hex32 = z.string().regex(/^0x[0-9a-f]{64}$/);
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const uint = z.string().regex(/^(0|[1-9]\d*)$/);
const chainName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/);

export function batchEntryPath(chain: string, batchId: string): string {
  return `batches/${chain}/${batchId}.json`;
}

/** `batches/<chain>/<batchId>.json` -> its chain and batch id, or null for any other path. */
export function parseBatchEntryPath(path: string): { chain: string; batchId: string } | null {
  const match = /^batches\/([a-z][a-z0-9-]{0,31})\/(0x[0-9a-f]{64})\.json$/.exec(path);
  return match === null ? null : { chain: match[1]!, batchId: match[2]! };
}

export const ManifestEntry = z.strictObject({
  path: z.string().min(1),
  size: z.int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ManifestEntry = z.output<typeof ManifestEntry>;

export const Manifest = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  /** ISO 8601, UTC */
  createdAt: z.string(),
  createdBy: z.string(),
  source: z.strictObject({
    /** the relayer's archive directory that was backed up */
    archiveDir: z.string(),
    /** configuration files read */
    config: z.array(z.string()),
  }),
  /** every chain with batches, and the head the references were read at */
  chains: z.array(
    z.strictObject({
      name: chainName,
      chainId: z.int().positive(),
      router: address,
      head: z.strictObject({ number: z.int().min(0), hash: hex32, timestamp: z.int().min(0) }),
    }),
  ),
  totals: z.strictObject({
    batches: z.int().min(0),
    receipts: z.int().min(0),
    rows: z.int().min(0),
    /** batches settled on-chain when the backup was made */
    settled: z.int().min(0),
    /** batches archived but not (yet) settled on-chain */
    notSettled: z.int().min(0),
  }),
  /** every entry of the archive but this one, in archive order */
  entries: z.array(ManifestEntry),
});
export type Manifest = z.output<typeof Manifest>;

/** What the chain records of a settled batch: the BatchSettled log, its RowRejected logs and `batchInfo`. */
export const OnchainSettlement = z.strictObject({
  txHash: hex32,
  block: z.int().min(0),
  blockHash: hex32,
  rowsRoot: hex32,
  receiptsRoot: hex32,
  dataCid: z.string().min(1),
  /** unix seconds */
  settledAt: z.int().min(0),
  releaseAt: z.int().min(0),
  /** start (unix s) of the usage bucket of the batch's calls, as committed on-chain */
  callsFrom: z.int().min(0),
  status: z.enum(["escrowed", "released"]),
  rowCount: z.int().min(0),
  acceptedRows: z.int().min(0),
  /** [row index, reason] of each rejected row, by index */
  rejected: z.array(z.tuple([z.int().min(0), z.enum(REJECT_REASONS)])),
  /** token units escrowed by the settlement */
  escrowed: uint,
});
export type OnchainSettlement = z.output<typeof OnchainSettlement>;

export const BatchReference = z.strictObject({
  chain: chainName,
  chainId: z.int().positive(),
  router: address,
  batchId: hex32,
  /** the archive entry holding the batch file */
  entry: z.string(),
  /** CID of the batch file's bytes (what `dataCid` must be) */
  cid: z.string().min(1),
  receiptsRoot: hex32,
  rows: z.int().min(0),
  receipts: z.int().min(0),
  /** the sum of the rows' amounts (token units) */
  amount: uint,
  /** null: not settled on-chain when the backup was made */
  settlement: OnchainSettlement.nullable(),
});
export type BatchReference = z.output<typeof BatchReference>;

export const References = z.strictObject({
  format: z.literal(REFERENCES_FORMAT),
  batches: z.array(BatchReference),
});
export type References = z.output<typeof References>;

/** Backup names in the order they were made: by time, then by the `-<n>` suffix of names made in the same second. */
export function compareBackupNames(a: string, b: string): number {
  const key = (name: string): [string, number] => {
    const match = /^agentgpt-backup-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz$/.exec(name);
    return match === null ? [name, 0] : [match[1]!, match[2] === undefined ? 1 : Number(match[2])];
  };
  const [ta, na] = key(a);
  const [tb, nb] = key(b);
  return ta < tb ? -1 : ta > tb ? 1 : na - nb;
}

/** `agentgpt-backup-20250208T120000Z.tar.gz` for `at`, or with `-<n>` when that name is taken. */
export function backupName(at: Date, taken: ReadonlySet<string> = new Set()): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
  let name = `agentgpt-backup-${stamp}.tar.gz`;
  for (let n = 2; taken.has(name); n++) name = `agentgpt-backup-${stamp}-${n}.tar.gz`;
  return name;
}
