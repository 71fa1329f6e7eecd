/**
 * The receipts archive: one file per batch under `<chain>/<batchId>.json`, written before the batch is sent, so a
 * batch on-chain always has its file. Two stores implement it:
 *
 * - a local folder (./local-archive.ts, the single-host default): written atomically (temporary file, fsync,
 *   link, fsync of the directory);
 * - S3 or an S3-compatible store (./s3-archive.ts), for a fleet whose batcher and settler run on different hosts.
 *
 * The write rule, for both: a batch file, once written, is never replaced. Writing the same bytes again (a retried
 * write, a batcher resuming a half-sealed batch) succeeds and changes nothing; writing different bytes under a
 * batch id that has a file fails with ArchiveConflictError, and the file that was there stays.
 */
import { BatchFile } from "./batch-file.js";

export interface Archive {
  /** Where the archive is, for people: a directory, or `s3://bucket/prefix`. */
  readonly location: string;
  /** Where a batch's file is (or would be), for people: a path, or `s3://bucket/key`. */
  locationOf(chain: string, batchId: string): string;
  /** Stores a batch file durably (see the write rule above); returns its location. */
  write(chain: string, batchId: string, bytes: Uint8Array): Promise<string>;
  /** The file's exact bytes, or null when it is not archived. */
  readBytes(chain: string, batchId: string): Promise<Uint8Array | null>;
  /** The parsed file, or null when it is not archived. */
  read(chain: string, batchId: string): Promise<BatchFile | null>;
  /** Batch ids archived for `chain`. */
  list(chain: string): Promise<string[]>;
  /** The chains that have batch files (folder names / key prefixes), sorted. */
  chains(): Promise<string[]>;
  /**
   * Moves a file out of the way (it stays readable under `<location>.<suffix>`) so that a different one can be
   * written: only `backup restore --overwrite` does this. Returns where the old file now is.
   */
  setAside(chain: string, batchId: string, suffix: string): Promise<string>;
  /** Checks that the archive can be read and written (the bucket exists, the credentials work); throws ArchiveError. */
  check(): Promise<void>;
  /** Releases connections (an S3 client's sockets). */
  close(): void;
}

export type ArchiveErrorCode = "CONFLICT" | "NO_BUCKET" | "CREDENTIALS" | "ACCESS_DENIED" | "UNREACHABLE" | "FAILED";

/** A failure of the archive store, with a message that names the store and the fix (never a credential). */
export class ArchiveError extends Error {
  override readonly name: string = "ArchiveError";
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A different file under a batch id that already has one: the one there is kept. */
export class ArchiveConflictError extends ArchiveError {
  override readonly name = "ArchiveConflictError";
  constructor(readonly location: string) {
    super(
      "CONFLICT",
      `${location} exists with different bytes: a batch file is never replaced (two batchers on one chain, or a batch rebuilt with other prices?); ` +
        "the archived file is kept: compare the two and remove the wrong one by hand only if it was never sent",
    );
  }
}

export const BATCH_ID_PATTERN = /^0x[0-9a-f]{64}$/;
/** Chain names as `chains:` allows them (relayer/config). */
export const CHAIN_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export function parseBatchBytes(bytes: Uint8Array): BatchFile {
  return BatchFile.parse(JSON.parse(new TextDecoder().decode(bytes)));
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
