/**
 * Batch files from the relayer's archive, reduced to usage lines (usage-lines.ts) and kept in memory: a batch file
 * never changes once written, so each is read and parsed once. A missing file is not remembered (it may be
 * restored later).
 */
import type { Archive } from "../batcher/archive.js";
import { batchLines, type BatchLines } from "./usage-lines.js";

export class ArchiveLines {
  private readonly cache = new Map<string, BatchLines>();

  constructor(readonly archive: Archive) {}

  /** The batch's lines, or null when the archive has no file for it (or a file of another batch under its name). */
  async get(chain: string, batchId: string): Promise<BatchLines | null> {
    const key = `${chain}/${batchId.toLowerCase()}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const file = await this.archive.read(chain, batchId.toLowerCase());
    if (file === null || file.batchId.toLowerCase() !== batchId.toLowerCase()) return null;
    const lines = batchLines(file);
    this.cache.set(key, lines);
    return lines;
  }

  /** Forgets every batch of `chain` not in `keep` (batches that left the window). */
  prune(chain: string, keep: ReadonlySet<string>): void {
    for (const key of this.cache.keys()) {
      const [keyChain, batchId] = key.split("/") as [string, string];
      if (keyChain === chain && !keep.has(batchId)) this.cache.delete(key);
    }
  }
}
