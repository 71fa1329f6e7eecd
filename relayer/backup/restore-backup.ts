/**
 * `agentgpt litellm backup restore`: rebuilds the relayer's archive directory (`<dir>/<chain>/<batchId>.json`) from a
 * backup. A batch file is written only when its bytes match the manifest, it checks out on its own (receipts root,
 * batch id, rows) and its CID is the one recorded as settled on-chain. Files are written atomically (./batcher's
 * Archive). A file already there with the same bytes is left alone; one with different bytes is never replaced
 * silently: it is reported as a conflict (with which of the two is the file settled on-chain), and replaced only
 * with `overwrite`, the old one kept beside it as `<batchId>.json.replaced-<time>`. Ingest's dedupe records are
 * rebuilt after it from the archive directory (./dedupe-records.ts rebuildDedupe; the CLI runs both).
 */
import type { Readable } from "node:stream";

import type { Archive } from "../batcher/archive.js";
import { LocalArchive } from "../batcher/local-archive.js";
import { contentId } from "../batcher/content-id.js";
import { checkBatchBytes } from "./batch-checks.js";
import type { Manifest } from "./manifest.js";
import { createProgress } from "./progress.js";
import { openBackup } from "./read-backup.js";

export interface RestoreConflict {
  readonly chain: string;
  readonly batchId: string;
  readonly path: string;
  /** CID of the file in the archive directory */
  readonly existingCid: string;
  /** CID of the backup's file (the one recorded as settled, when it was settled) */
  readonly backupCid: string;
  /** the settled dataCid recorded in the backup (null: not settled at backup time) */
  readonly settledCid: string | null;
  /** true when the existing file was moved aside and replaced (`overwrite`) */
  readonly replaced: boolean;
  /** where the old file went, when replaced */
  readonly keptAs: string | null;
}

export interface RestoreReport {
  readonly name: string;
  readonly manifest: Manifest;
  readonly archiveDir: string;
  /** written: the archive directory did not have them */
  readonly restored: string[];
  /** already there, byte for byte */
  readonly unchanged: string[];
  readonly conflicts: RestoreConflict[];
  /** entries not written because they failed a check, with why */
  readonly refused: Array<{ readonly chain: string; readonly batchId: string; readonly problems: string[] }>;
  /** archive-level problems (missing entries, a bad sidecar hash) */
  readonly problems: string[];
  readonly ok: boolean;
}

export interface RestoreOptions {
  readonly source: Readable;
  readonly name: string;
  readonly recordedSha256: string | null;
  readonly archiveDir?: string | undefined;
  /** ...or the archive itself (a bucket): takes precedence over archiveDir */
  readonly archive?: Archive | undefined;
  /** replace differing files (the old ones are kept beside them) */
  readonly overwrite?: boolean | undefined;
  /** report what would happen, write nothing */
  readonly dryRun?: boolean | undefined;
  readonly progress?: boolean | undefined;
  readonly now?: Date | undefined;
}

export async function restoreBackup(options: RestoreOptions): Promise<RestoreReport> {
  const archive = options.archive ?? new LocalArchive(options.archiveDir!);
  const stamp = (options.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
  const restored: string[] = [];
  const unchanged: string[] = [];
  const conflicts: RestoreConflict[] = [];
  const refused: RestoreReport["refused"] = [];
  try {
    const backup = await openBackup(options.source, options.name);
    const problems = [...backup.headerProblems];
    const progress = createProgress("restoring batches", backup.manifest.totals.batches, options.progress === undefined ? {} : { enabled: options.progress });
    for await (const entry of backup.entries()) {
      progress.tick();
      const checked = await checkBatchBytes(entry.bytes, { chain: entry.chain, batchId: entry.batchId });
      const reasons = [...entry.integrity, ...checked.problems];
      const reference = entry.reference;
      if (reference === undefined) reasons.push("no reference in references.json");
      else {
        if (reference.cid !== checked.cid) reasons.push(`CID of the bytes ${checked.cid} is not the recorded CID ${reference.cid}`);
        if (reference.settlement !== null && reference.settlement.dataCid !== checked.cid) {
          reasons.push(`CID of the bytes ${checked.cid} is not the dataCid settled on-chain ${reference.settlement.dataCid}`);
        }
      }
      if (reasons.length > 0) {
        refused.push({ chain: entry.chain, batchId: entry.batchId, problems: reasons });
        continue;
      }
      const path = archive.locationOf(entry.chain, entry.batchId);
      const existing = await archive.readBytes(entry.chain, entry.batchId);
      if (existing === null) {
        if (options.dryRun !== true) await archive.write(entry.chain, entry.batchId, entry.bytes);
        restored.push(path);
        continue;
      }
      if (Buffer.compare(Buffer.from(existing), entry.bytes) === 0) {
        unchanged.push(path);
        continue;
      }
      const conflict = {
        chain: entry.chain,
        batchId: entry.batchId,
        path,
        existingCid: await contentId(existing),
        backupCid: checked.cid,
        settledCid: reference?.settlement?.dataCid ?? null,
      };
      if (options.overwrite === true) {
        let keptAs = `${path}.replaced-${stamp}`;
        if (options.dryRun !== true) {
          keptAs = await archive.setAside(entry.chain, entry.batchId, `replaced-${stamp}`);
          await archive.write(entry.chain, entry.batchId, entry.bytes);
        }
        conflicts.push({ ...conflict, replaced: true, keptAs });
      } else {
        conflicts.push({ ...conflict, replaced: false, keptAs: null });
      }
    }
    progress.done();
    const finished = backup.finish();
    problems.push(...finished.problems);
    if (options.recordedSha256 !== null && options.recordedSha256 !== finished.sha256) {
      problems.push(`the archive's SHA-256 is ${finished.sha256}, its .sha256 file says ${options.recordedSha256}: the archive was altered or corrupted`);
    }
    const ok = problems.length === 0 && refused.length === 0 && conflicts.every((conflict) => conflict.replaced);
    return { name: options.name, manifest: backup.manifest, archiveDir: archive.location, restored, unchanged, conflicts, refused, problems, ok };
  } finally {
    options.source.destroy();
  }
}
