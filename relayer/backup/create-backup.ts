/**
 * `agentgpt litellm backup`: every batch file of the relayer's archive (their receipts inside), with the on-chain
 * reference of each batch read from the chain at backup time, into one compressed, versioned archive
 * (./manifest.ts describes the format). Two passes: the first reads and hashes every file and asks the chain; the
 * second writes the archive, re-reading each file and refusing one that changed in between. The archive is built
 * in a temporary file, then handed to the target, which never replaces an existing backup.
 */
import { createHash } from "node:crypto";
import { createWriteStream, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

import type { Archive } from "../batcher/archive.js";
import { LocalArchive } from "../batcher/local-archive.js";
import type { RelayerConfig } from "../config/index.js";
import { PACKAGE_ROOT } from "../config/package-root.js";
import type { SettlementStore } from "../settler/settlement-store.js";
import { amountOf, checkBatchBytes } from "./batch-checks.js";
import { headOf, openBackupChain, readOnchainSettlement, type BackupChain } from "./chain-references.js";
import { BackupError } from "./errors.js";
import {
  BACKUP_FORMAT,
  MANIFEST_PATH,
  REFERENCES_FORMAT,
  REFERENCES_PATH,
  backupName,
  batchEntryPath,
  type BatchReference,
  type Manifest,
  type ManifestEntry,
  type References,
} from "./manifest.js";
import { hashingStream } from "./hashing-stream.js";
import { createProgress } from "./progress.js";
import { TarWriter } from "./tar.js";
import type { BackupTarget } from "./targets/target.js";

const PACKAGE = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
export const CREATED_BY = `agentgpt ${PACKAGE.version}`;

export interface CreateBackupOptions {
  readonly config: RelayerConfig;
  /** the relayer's archive directory (`archive.dir` resolved against the config file) */
  readonly archiveDir?: string | undefined;
  /** ...or the archive itself (a bucket): takes precedence over archiveDir */
  readonly archive?: Archive | undefined;
  readonly target: BackupTarget;
  /** the settler's ledger per chain, when Redis is reachable: block hints, and final batches missing from the archive */
  readonly ledger?: ((chain: string) => SettlementStore) | undefined;
  readonly deploymentsDir?: string | undefined;
  /** draw progress bars (TTY only; default: when stderr is a TTY) */
  readonly progress?: boolean | undefined;
  readonly now?: Date | undefined;
  /** batches read from the chain at once (default 8) */
  readonly concurrency?: number | undefined;
}

export interface BackupSummary {
  readonly name: string;
  readonly location: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly manifest: Manifest;
  /** things worth a look that did not stop the backup (each names the batch) */
  readonly warnings: string[];
}

interface Collected {
  chain: string;
  batchId: string;
  entry: string;
  sha256: string;
  size: number;
  reference: BatchReference;
}

export async function createBackup(options: CreateBackupOptions): Promise<BackupSummary> {
  const now = options.now ?? new Date();
  const archive = options.archive ?? new LocalArchive(options.archiveDir!);
  const chainNames = await archive.chains();
  const warnings: string[] = [];
  const chains = new Map<string, BackupChain>();
  try {
    for (const name of chainNames) {
      const config = options.config.chains.find((chain) => chain.name === name);
      if (config === undefined) {
        throw new BackupError(
          "NO_CHAIN",
          `the archive ${archive.location} has batches of chain "${name}", which ${options.config.files[0]} does not list under chains: add it (with rpc_urls) so its settlements can be read`,
        );
      }
      chains.set(name, await openBackupChain(config, { deploymentsDir: options.deploymentsDir }));
    }

    const work: Array<{ chain: string; batchId: string }> = [];
    for (const name of chainNames) for (const batchId of (await archive.list(name)).sort()) work.push({ chain: name, batchId });
    if (work.length === 0) {
      throw new BackupError("NO_BACKUP", `the archive ${archive.location} holds no batch files: nothing to back up (check archive.dir or archive.s3 in the config)`);
    }

    const heads = new Map<string, Awaited<ReturnType<typeof headOf>>>();
    for (const [name, chain] of chains) heads.set(name, await headOf(chain));

    const progress = createProgress("reading batches", work.length, options.progress === undefined ? {} : { enabled: options.progress });
    const collected = await mapLimit(work, options.concurrency ?? 8, async ({ chain: name, batchId }) => {
      const chain = chains.get(name)!;
      const bytes = await archive.readBytes(name, batchId);
      if (bytes === null) throw new BackupError("ARCHIVE_INVALID", `${archive.locationOf(name, batchId)} disappeared during the backup: run it again`);
      const checked = await checkBatchBytes(bytes, { chain: name, batchId });
      for (const problem of checked.problems) warnings.push(`batch ${batchId} (${name}): ${problem}`);
      const hint = (await options.ledger?.(name).get(batchId).catch(() => null))?.block ?? null;
      const settlement = await readOnchainSettlement(chain, batchId, hint);
      const file = checked.file;
      if (file !== null && (file.chainId !== chain.chainId || file.router.toLowerCase() !== chain.router.toLowerCase())) {
        warnings.push(`batch ${batchId} (${name}): the file is for chain ${file.chainId}, router ${file.router}; the configured chain is ${chain.chainId}, router ${chain.router}`);
      }
      if (settlement === null) {
        warnings.push(`batch ${batchId} (${name}): not settled on-chain (yet): backed up without a settlement`);
      } else if (settlement.dataCid !== checked.cid) {
        warnings.push(`batch ${batchId} (${name}): the archived file's CID ${checked.cid} is not the dataCid settled on-chain (${settlement.dataCid}): the archive holds a different file than was settled`);
      }
      const entry = batchEntryPath(name, batchId);
      const reference: BatchReference = {
        chain: name,
        chainId: chain.chainId,
        router: chain.router,
        batchId,
        entry,
        cid: checked.cid,
        receiptsRoot: file?.receiptsRoot ?? checked.receiptsRoot ?? `0x${"00".repeat(32)}`,
        rows: file?.rows.length ?? 0,
        receipts: file?.receipts.length ?? 0,
        amount: file === null ? "0" : amountOf(file).toString(),
        settlement,
      };
      progress.tick();
      return { chain: name, batchId, entry, sha256: sha256Hex(bytes), size: bytes.length, reference } satisfies Collected;
    });
    progress.done();

    for (const name of chainNames) {
      const store = options.ledger?.(name);
      if (store === undefined) continue;
      const finals = await store.finalIds().catch(() => [] as string[]);
      const archived = new Set(collected.filter((c) => c.chain === name).map((c) => c.batchId));
      for (const batchId of finals) {
        if (!archived.has(batchId)) warnings.push(`batch ${batchId} (${name}): final in the settler's ledger but its file is missing from the archive`);
      }
    }

    const references: References = { format: REFERENCES_FORMAT, batches: collected.map((c) => c.reference) };
    const referencesBytes = new TextEncoder().encode(`${JSON.stringify(references, null, 1)}\n`);
    const entries: ManifestEntry[] = [
      { path: REFERENCES_PATH, size: referencesBytes.length, sha256: sha256Hex(referencesBytes) },
      ...collected.map((c) => ({ path: c.entry, size: c.size, sha256: c.sha256 })),
    ];
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      createdAt: now.toISOString(),
      createdBy: CREATED_BY,
      source: { archiveDir: archive.location, config: [...options.config.files] },
      chains: [...chains.values()].map((chain) => ({ name: chain.name, chainId: chain.chainId, router: chain.router, head: heads.get(chain.name)! })),
      totals: {
        batches: collected.length,
        receipts: collected.reduce((sum, c) => sum + c.reference.receipts, 0),
        rows: collected.reduce((sum, c) => sum + c.reference.rows, 0),
        settled: collected.filter((c) => c.reference.settlement !== null).length,
        notSettled: collected.filter((c) => c.reference.settlement === null).length,
      },
      entries,
    };
    const manifestBytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`);

    const name = backupName(now, new Set(await options.target.list()));
    const staging = await mkdtemp(join(tmpdir(), "agentgpt-backup-"));
    try {
      const path = join(staging, name);
      const { sha256, bytes } = await writeArchive(path, now, manifestBytes, referencesBytes, collected, archive, options.progress);
      const location = await options.target.put(name, path, sha256);
      return { name, location, sha256, bytes, manifest, warnings };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  } finally {
    for (const chain of chains.values()) chain.close();
  }
}

async function writeArchive(
  path: string,
  now: Date,
  manifest: Uint8Array,
  references: Uint8Array,
  collected: readonly Collected[],
  archive: Archive,
  progressEnabled: boolean | undefined,
): Promise<{ sha256: string; bytes: number }> {
  const hasher = hashingStream();
  const gzip = createGzip({ level: 9 });
  const written = pipeline(gzip, hasher.stream, createWriteStream(path, { mode: 0o644 }));
  const tar = new TarWriter(gzip);
  const mtime = Math.floor(now.getTime() / 1000);
  const progress = createProgress("writing backup", collected.length, progressEnabled === undefined ? {} : { enabled: progressEnabled });
  try {
    await tar.add(MANIFEST_PATH, manifest, mtime);
    await tar.add(REFERENCES_PATH, references, mtime);
    for (const item of collected) {
      const data = await archive.readBytes(item.chain, item.batchId);
      if (data === null || sha256Hex(data) !== item.sha256) {
        throw new BackupError("ARCHIVE_INVALID", `${archive.locationOf(item.chain, item.batchId)} changed during the backup: archive files must never change; find out why, then run the backup again`);
      }
      await tar.add(item.entry, data, mtime);
      progress.tick();
    }
    await tar.finish();
    await written;
  } catch (error) {
    gzip.destroy();
    await written.catch(() => undefined);
    throw error;
  } finally {
    progress.done();
  }
  return hasher.result();
}

/** Chain folders of the archive directory. */

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `items` mapped by `fn`, at most `limit` at once, results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  });
  await Promise.all(workers);
  return out;
}
