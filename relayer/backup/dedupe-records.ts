/**
 * Exactly once across a restore: the ingest dedupe records of every call already billed, rebuilt from batch files,
 * and compared with what Redis holds.
 *
 * What a receipt in a batch file gives (queue/scripts.ts describes the record): its id (the key, or `<key>#<start>`
 * for another call that reused the key; the key itself is the receipt's `litellmId`), the call's start time, the
 * chain, and the fingerprint, rebuilt by ingest's own `fingerprintOfReceipt` (LiteLLM's total_tokens is not kept; see
 * there). The record expires dedupe_ttl after the receipt was received, as ingest's would.
 *
 * Where from:
 * 1. every batch file in the archive directory (after the backup's files are restored into it) that its chain
 *    records as settled (one never sent gets none: a re-send bills its calls once, in a new batch);
 * 2. each configured chain's BatchSettled logs of the last dedupe_ttl (older batches hold only expired records): a
 *    batch settled there but absent from the archive is fetched by its on-chain CID from IPFS when an IPFS URL is
 *    given (the bytes must hash to that CID, and the file is then archived too); without one it is listed as not
 *    rebuilt, since the chain holds only its aggregated rows, not its calls.
 * Not rebuilt (none is in a batch file): unbillable records (a re-send is kept as unbillable again, or billed if the
 * configuration now prices it, as it never was), conflict records, receipts still queued or pooled at the time of
 * the loss, and ingest's counters.
 */
import { readdir } from "node:fs/promises";

import { Archive } from "../batcher/archive.js";
import { BatchFile } from "../batcher/batch-file.js";
import { contentId } from "../batcher/content-id.js";
import { loadBatchFile } from "../disputes/batch-source.js";
import type { IpfsClient } from "../disputes/ipfs.js";
import { getLogsChunked } from "../disputes/logs.js";
import { settlementTopics } from "../disputes/settled-batch.js";
import { fingerprintOfReceipt } from "../ingest/fingerprint.js";
import type { QueuedRecord, ReceiptStore } from "../queue/index.js";
import type { BackupChain } from "./chain-references.js";

/** The dedupe records of a batch file's receipts. */
export function dedupeRecordsOf(file: BatchFile, dedupeTtlMs: number): QueuedRecord[] {
  return file.receipts.map(({ receipt }) => ({
    id: receipt.id,
    key: receipt.litellmId,
    fingerprint: fingerprintOfReceipt(receipt),
    startTime: receipt.startTime,
    chain: receipt.chain,
    origin: `restored:${file.batchId}`,
    expiresAt: receipt.receivedAt + dedupeTtlMs,
  }));
}

export interface UnrebuiltBatch {
  readonly chain: string;
  readonly batchId: string;
  readonly dataCid: string;
  readonly block: number;
  /** why its calls could not be rebuilt */
  readonly reason: string;
}

export interface DedupeRebuildReport {
  /** batch files read from the archive directory */
  readonly archiveBatches: number;
  /** batches settled on-chain (within dedupe_ttl) that were not in the archive, fetched from IPFS by CID */
  readonly chainBatches: Array<{ readonly chain: string; readonly batchId: string; readonly path: string }>;
  /** settled on-chain, not in the archive, not fetched: re-sends of their calls would be billed again */
  readonly unrebuilt: UnrebuiltBatch[];
  /** archived but not settled on-chain: no records, so a re-send bills those calls once, in a new batch */
  readonly notSettled: Array<{ readonly chain: string; readonly batchId: string; readonly receipts: number }>;
  /** chains whose settled batches were looked for, and from which block */
  readonly chainsScanned: Array<{ readonly chain: string; readonly fromBlock: number; readonly toBlock: number; readonly settled: number }>;
  readonly receipts: number;
  readonly written: number;
  readonly present: number;
  readonly expired: number;
  /** bare keys of reused ids held (see ReceiptStore.holdReusedKeys) */
  readonly keysFilled: number;
  /** files of the archive directory that are not batch files */
  readonly problems: string[];
}

export interface RebuildOptions {
  readonly store: ReceiptStore;
  readonly archiveDir: string;
  readonly dedupeTtlMs: number;
  /** chains to look for settled batches missing from the archive (opened with openBackupChain) */
  readonly chains?: readonly BackupChain[] | undefined;
  readonly ipfs?: IpfsClient | undefined;
  readonly now?: number | undefined;
}

/** The batch files of the archive directory, by chain folder, one at a time (an unreadable file is reported, skipped). */
async function* archiveFiles(archiveDir: string, problems: string[]): AsyncGenerator<{ chain: string; file: BatchFile }> {
  const archive = new Archive(archiveDir);
  for (const chain of await chainFolders(archiveDir)) {
    for (const batchId of await archive.list(chain)) {
      let file: BatchFile | null;
      try {
        file = await archive.read(chain, batchId);
      } catch (error) {
        problems.push(`${archive.pathOf(chain, batchId)} is not a batch file (${(error as Error).message.split("\n")[0]}): its calls have no dedupe record`);
        continue;
      }
      if (file !== null) yield { chain, file };
    }
  }
}

/**
 * Rebuilds the records in two passes over the batch files, one file in memory at a time: every call's own id first,
 * then the bare keys of derived ids (a bare key held before its own call's record was written would hide it). Batches
 * fetched from IPFS are archived first, so both passes read them there.
 */
export async function rebuildDedupe(options: RebuildOptions): Promise<DedupeRebuildReport> {
  const now = options.now ?? Date.now();
  const problems: string[] = [];
  const archive = new Archive(options.archiveDir);
  const known = new Set<string>();
  for (const chain of await chainFolders(options.archiveDir)) for (const batchId of await archive.list(chain)) known.add(`${chain}/${batchId}`);
  const archiveBatches = known.size;
  const chainBatches: DedupeRebuildReport["chainBatches"] = [];
  const unrebuilt: UnrebuiltBatch[] = [];
  const chainsScanned: DedupeRebuildReport["chainsScanned"] = [];
  const opened = new Map((options.chains ?? []).map((chain) => [chain.name, chain]));

  for (const chain of options.chains ?? []) {
    const settled = await settledSince(chain, Math.floor((now - options.dedupeTtlMs) / 1000));
    chainsScanned.push({ chain: chain.name, fromBlock: settled.fromBlock, toBlock: settled.toBlock, settled: settled.batches.length });
    for (const batch of settled.batches) {
      if (known.has(`${chain.name}/${batch.batchId}`)) continue;
      if (options.ipfs === undefined) {
        unrebuilt.push({ ...batch, chain: chain.name, reason: "not in the archive, and no IPFS URL to fetch it by its CID" });
        continue;
      }
      try {
        const loaded = await loadBatchFile({ ipfs: options.ipfs }, { batchId: batch.batchId, dataCid: batch.dataCid, chainId: chain.chainId, router: chain.router });
        if ((await contentId(loaded.bytes)) !== batch.dataCid) throw new Error(`the fetched bytes are not CID ${batch.dataCid}`);
        // archived now, so the passes below (and every later restore) read it from the archive
        const path = await archive.write(chain.name, batch.batchId, loaded.bytes);
        chainBatches.push({ chain: chain.name, batchId: batch.batchId, path });
        known.add(`${chain.name}/${batch.batchId}`);
      } catch (error) {
        unrebuilt.push({ ...batch, chain: chain.name, reason: (error as Error).message.split("\n")[0]! });
      }
    }
  }

  // A batch archived but not settled on-chain (sealed, then Redis was lost before the settler sent it) is never
  // sent now: its calls get no record, so a re-send bills them once, in a new batch. Without a connection to its
  // chain a batch counts as settled (a record too many never charges anyone twice).
  const notSettled: DedupeRebuildReport["notSettled"] = [];
  const skip = new Set<string>();
  const totals = { receipts: 0, written: 0, present: 0, expired: 0, keysFilled: 0 };
  for await (const { chain, file } of archiveFiles(options.archiveDir, problems)) {
    const records = dedupeRecordsOf(file, options.dedupeTtlMs);
    const connection = opened.get(chain);
    if (records.some((record) => record.expiresAt > now) && connection !== undefined && Number((await connection.chain.router.batchInfo(file.batchId)).status) === 0) {
      notSettled.push({ chain, batchId: file.batchId, receipts: file.receipts.length });
      skip.add(`${chain}/${file.batchId}`);
      continue;
    }
    const result = await options.store.restoreQueued(records, { now });
    totals.receipts += file.receipts.length;
    totals.written += result.written;
    totals.present += result.present;
    totals.expired += result.expired;
  }
  for await (const { chain, file } of archiveFiles(options.archiveDir, [])) {
    if (skip.has(`${chain}/${file.batchId}`)) continue;
    totals.keysFilled += await options.store.holdReusedKeys(dedupeRecordsOf(file, options.dedupeTtlMs), { now });
  }
  return { archiveBatches, chainBatches, unrebuilt, notSettled, chainsScanned, ...totals, problems };
}

async function chainFolders(archiveDir: string): Promise<string[]> {
  try {
    return (await readdir(archiveDir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** The batches `chain`'s router settled at or after `since` (unix seconds), from its BatchSettled logs. */
async function settledSince(
  chain: BackupChain,
  since: number,
): Promise<{ fromBlock: number; toBlock: number; batches: Array<{ batchId: string; dataCid: string; block: number }> }> {
  const head = await chain.provider.getBlockNumber();
  const fromBlock = await chain.clock.firstBlockAtOrAfter(since, 0, head);
  if (fromBlock > head) return { fromBlock, toBlock: head, batches: [] };
  const topic = settlementTopics(chain.chain).batchSettled;
  const logs = await getLogsChunked(chain.provider, { address: chain.router, topics: [topic] }, fromBlock, head);
  const batches = logs.flatMap((log) => {
    const parsed = chain.chain.router.interface.parseLog({ topics: [...log.topics], data: log.data });
    if (parsed === null || parsed.name !== "BatchSettled") return [];
    return [{ batchId: (parsed.args.getValue("batchId") as string).toLowerCase(), dataCid: parsed.args.getValue("dataCid") as string, block: log.blockNumber }];
  });
  return { fromBlock, toBlock: head, batches };
}

export interface DedupeAgreement {
  /** receipts of the batch files whose record should be in Redis now (received within dedupe_ttl) */
  readonly expected: number;
  /** received longer ago than dedupe_ttl: ingest's record is gone too, not expected */
  readonly expired: number;
  readonly present: number;
  /** no record: a re-send of the call would be billed again */
  readonly missing: string[];
  /** a record, but one that would not stop a re-send being billed: kept as unbillable, or of another start time */
  readonly wrong: Array<{ readonly id: string; readonly why: string }>;
  /** records whose fingerprint is not the one rebuilt from the receipt: a re-send is a conflict (not billed) */
  readonly otherFingerprint: number;
  /** derived ids whose bare key has no record (a re-send would take the free key) */
  readonly keysMissing: string[];
  /** queued records in Redis for calls not in these batch files (received since, or rebuilt from the chain) */
  readonly extra: number;
  readonly agrees: boolean;
}

/**
 * Compares Redis's dedupe records with `records` (dedupeRecordsOf each batch file of a backup), of which `expired`
 * more were left out as expired.
 */
export async function compareDedupe(store: ReceiptStore, records: readonly QueuedRecord[], now = Date.now()): Promise<DedupeAgreement> {
  const live = records.filter((record) => record.expiresAt > now);
  const found = await store.dedupeRecords(
    live.map((record) => record.id),
    live.map((record) => record.key),
  );
  const missing: string[] = [];
  const wrong: DedupeAgreement["wrong"][number][] = [];
  let otherFingerprint = 0;
  live.forEach((record, index) => {
    const got = found[index];
    if (got === null || got === undefined) return void missing.push(record.id);
    if (got.kind !== "q") wrong.push({ id: record.id, why: "kept as unbillable, though the call was billed: a re-send would be billed again" });
    else if (got.startTime !== null && record.startTime !== null && Math.abs(got.startTime - record.startTime) > 1) {
      wrong.push({ id: record.id, why: `start time ${got.startTime}, the receipt's is ${record.startTime}: a re-send would be another call` });
    } else if (got.fingerprint !== record.fingerprint) otherFingerprint += 1;
  });
  const ids = new Set(live.map((record) => record.id));
  const derived = live.filter((record) => record.id !== record.key && !ids.has(record.key));
  const bare = await store.dedupeRecords(derived.map((record) => record.key));
  const keysMissing = derived.filter((_, index) => bare[index] === null).map((record) => record.key);
  const bareKeys = new Set(derived.map((record) => record.key));
  let extra = 0;
  for await (const page of store.dedupeIds()) {
    for (const { id, record } of page) if (record?.kind === "q" && !ids.has(id) && !bareKeys.has(id)) extra += 1;
  }
  return {
    expected: live.length,
    expired: records.length - live.length,
    present: live.length - missing.length,
    missing,
    wrong,
    otherFingerprint,
    keysMissing,
    extra,
    agrees: missing.length === 0 && wrong.length === 0 && keysMissing.length === 0,
  };
}
