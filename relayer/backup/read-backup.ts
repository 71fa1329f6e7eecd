/**
 * Reading a backup archive as a stream, one entry in memory at a time: the manifest first, then the references,
 * then each batch entry with its size and SHA-256 checked against the manifest. The archive's own SHA-256 is
 * computed on the way (to compare with the `.sha256` sidecar). Entries the manifest does not list, and listed
 * entries the archive lacks, are reported.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";

import { BackupError } from "./errors.js";
import { hashingStream } from "./hashing-stream.js";
import { MANIFEST_PATH, Manifest, REFERENCES_PATH, References, parseBatchEntryPath, type BatchReference, type ManifestEntry } from "./manifest.js";
import { readTar, TarError } from "./tar.js";

export interface BatchEntry {
  readonly path: string;
  readonly chain: string;
  readonly batchId: string;
  readonly bytes: Buffer;
  readonly sha256: string;
  /** what the manifest lists for this path (undefined: not listed) */
  readonly listed: ManifestEntry | undefined;
  /** the batch's reference in references.json (undefined: none) */
  readonly reference: BatchReference | undefined;
  /** size or hash differ from the manifest, or it is not listed */
  readonly integrity: string[];
}

export interface OpenedBackup {
  readonly manifest: Manifest;
  readonly references: References;
  /** problems with manifest.json / references.json themselves */
  readonly headerProblems: string[];
  /** batch entries in archive order; other unexpected entries are reported by `finish` */
  entries(): AsyncGenerator<BatchEntry>;
  /** after `entries()` is exhausted: archive-level problems (missing or unexpected entries), and the archive's SHA-256 */
  finish(): { problems: string[]; sha256: string; bytes: number };
}

export async function openBackup(source: Readable, label: string): Promise<OpenedBackup> {
  const hasher = hashingStream();
  const gunzip = createGunzip();
  source.on("error", (error) => gunzip.destroy(error));
  hasher.stream.on("error", (error) => gunzip.destroy(error));
  const tar = readTar(source.pipe(hasher.stream).pipe(gunzip));

  const next = async () => {
    try {
      return await tar.next();
    } catch (error) {
      throw invalid(label, error);
    }
  };
  const first = await next();
  if (first.done === true || first.value.name !== MANIFEST_PATH) {
    throw new BackupError("ARCHIVE_INVALID", `${label}: the first entry is not ${MANIFEST_PATH}: not an agentgpt backup`);
  }
  let manifest: Manifest;
  try {
    manifest = Manifest.parse(JSON.parse(first.value.bytes.toString("utf8")));
  } catch (error) {
    throw new BackupError("ARCHIVE_INVALID", `${label}: ${MANIFEST_PATH} is not an agentgpt-backup-v1 manifest (${describe(error)})`, { cause: error });
  }
  const listed = new Map(manifest.entries.map((entry) => [entry.path, entry]));
  const seen = new Set<string>();
  const problems: string[] = [];
  const headerProblems: string[] = [];

  const second = await next();
  if (second.done === true || second.value.name !== REFERENCES_PATH) {
    throw new BackupError("ARCHIVE_INVALID", `${label}: the second entry is not ${REFERENCES_PATH}`);
  }
  seen.add(REFERENCES_PATH);
  headerProblems.push(...integrityOf(REFERENCES_PATH, second.value.bytes, listed.get(REFERENCES_PATH)).problems);
  let references: References;
  try {
    references = References.parse(JSON.parse(second.value.bytes.toString("utf8")));
  } catch (error) {
    throw new BackupError("ARCHIVE_INVALID", `${label}: ${REFERENCES_PATH} is not valid (${describe(error)})`, { cause: error });
  }
  const byEntry = new Map(references.batches.map((reference) => [reference.entry, reference]));
  if (byEntry.size !== references.batches.length) headerProblems.push(`${REFERENCES_PATH} lists a batch entry twice`);

  let exhausted = false;
  return {
    manifest,
    references,
    headerProblems,
    async *entries() {
      for (;;) {
        const item = await next();
        if (item.done === true) break;
        const { name, bytes: data } = item.value;
        if (seen.has(name)) {
          problems.push(`${name} appears twice in the archive`);
          continue;
        }
        seen.add(name);
        const batch = parseBatchEntryPath(name);
        if (batch === null) {
          problems.push(`${name} is not an entry a backup holds (unexpected)`);
          continue;
        }
        const { sha256, problems: integrity } = integrityOf(name, data, listed.get(name));
        yield { path: name, chain: batch.chain, batchId: batch.batchId, bytes: data, sha256, listed: listed.get(name), reference: byEntry.get(name), integrity };
      }
      exhausted = true;
    },
    finish() {
      if (!exhausted) throw new Error("finish() before entries() was read to the end");
      for (const entry of manifest.entries) {
        if (!seen.has(entry.path)) problems.push(`${entry.path} is listed in the manifest but missing from the archive`);
      }
      for (const reference of references.batches) {
        if (!seen.has(reference.entry)) problems.push(`batch ${reference.batchId} (${reference.chain}) has a reference but no entry ${reference.entry}`);
      }
      return { problems, ...hasher.result() };
    },
  };
}

function integrityOf(path: string, data: Buffer, entry: ManifestEntry | undefined): { sha256: string; problems: string[] } {
  const sha256 = createHash("sha256").update(data).digest("hex");
  if (entry === undefined) return { sha256, problems: [`${path} is not listed in the manifest`] };
  const problems: string[] = [];
  if (entry.size !== data.length) problems.push(`${path} is ${data.length} bytes, the manifest says ${entry.size}`);
  if (entry.sha256 !== sha256) problems.push(`${path} has SHA-256 ${sha256}, the manifest says ${entry.sha256}: the entry was altered or corrupted`);
  return { sha256, problems };
}

function invalid(label: string, error: unknown): BackupError {
  if (error instanceof TarError) return new BackupError("ARCHIVE_INVALID", `${label}: ${error.message}`, { cause: error });
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "Z_DATA_ERROR" || code === "Z_BUF_ERROR") {
    return new BackupError("ARCHIVE_INVALID", `${label}: not a gzip stream, or truncated (${(error as Error).message})`, { cause: error });
  }
  return error instanceof BackupError ? error : new BackupError("ARCHIVE_INVALID", `${label}: ${(error as Error).message}`, { cause: error });
}

function describe(error: unknown): string {
  if (error instanceof SyntaxError) return error.message;
  const issues = (error as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
  if (issues !== undefined && issues[0] !== undefined) return `${issues[0].path.map(String).join(".") || "(top level)"}: ${issues[0].message}`;
  return error instanceof Error ? error.message : String(error);
}
