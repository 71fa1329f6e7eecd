/**
 * The receipts archive: one file per batch, `<dir>/<chain>/<batchId>.json`, written atomically (temporary file,
 * fsync, rename, fsync of the directory) before the batch is sent, so a batch on-chain always has its file.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readFile, readdir, rename } from "node:fs/promises";
import { join } from "node:path";

import { BatchFile } from "./batch-file.js";

export class Archive {
  constructor(readonly dir: string) {}

  pathOf(chain: string, batchId: string): string {
    return join(this.dir, chain, `${batchId}.json`);
  }

  async write(chain: string, batchId: string, bytes: Uint8Array): Promise<string> {
    const folder = join(this.dir, chain);
    await mkdir(folder, { recursive: true });
    const path = this.pathOf(chain, batchId);
    const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`; // two writers (one process or two) never share it
    const file = await open(temporary, "w");
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    const directory = await open(folder, "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    return path;
  }

  /** The file's exact bytes, or null when it is not archived. */
  async readBytes(chain: string, batchId: string): Promise<Uint8Array | null> {
    try {
      return await readFile(this.pathOf(chain, batchId));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async read(chain: string, batchId: string): Promise<BatchFile | null> {
    const bytes = await this.readBytes(chain, batchId);
    if (bytes === null) return null;
    return BatchFile.parse(JSON.parse(new TextDecoder().decode(bytes)));
  }

  /** Batch ids archived for `chain`. */
  async list(chain: string): Promise<string[]> {
    try {
      const names = await readdir(join(this.dir, chain));
      return names.filter((name) => /^0x[0-9a-f]{64}\.json$/.test(name)).map((name) => name.slice(0, -5));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }
}
