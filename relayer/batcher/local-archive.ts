/**
 * The archive in a local folder, `<dir>/<chain>/<batchId>.json`: the single-host default. A file is written to a
 * temporary name, fsynced, then linked to its name (link fails when the name exists: a file is never replaced, see
 * the write rule in ./archive.ts) and the directory fsynced, so a crash leaves the whole file or none.
 */
import { randomUUID } from "node:crypto";
import { constants } from "node:fs";
import { access, link, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

import { ArchiveConflictError, ArchiveError, BATCH_ID_PATTERN, CHAIN_NAME_PATTERN, parseBatchBytes, sameBytes, type Archive } from "./archive.js";
import type { BatchFile } from "./batch-file.js";

export class LocalArchive implements Archive {
  constructor(readonly dir: string) {}

  get location(): string {
    return this.dir;
  }

  locationOf(chain: string, batchId: string): string {
    return join(this.dir, chain, `${batchId}.json`);
  }

  async write(chain: string, batchId: string, bytes: Uint8Array): Promise<string> {
    const folder = join(this.dir, chain);
    await mkdir(folder, { recursive: true });
    const path = this.locationOf(chain, batchId);
    const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`; // two writers (one process or two) never share it
    const file = await open(temporary, "w");
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await link(temporary, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const existing = await readFile(path);
      if (!sameBytes(existing, bytes)) throw new ArchiveConflictError(path);
    } finally {
      await rm(temporary, { force: true });
    }
    await syncDirectory(folder);
    return path;
  }

  async readBytes(chain: string, batchId: string): Promise<Uint8Array | null> {
    try {
      return await readFile(this.locationOf(chain, batchId));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async read(chain: string, batchId: string): Promise<BatchFile | null> {
    const bytes = await this.readBytes(chain, batchId);
    return bytes === null ? null : parseBatchBytes(bytes);
  }

  async list(chain: string): Promise<string[]> {
    try {
      const names = await readdir(join(this.dir, chain));
      return names.filter((name) => name.endsWith(".json") && BATCH_ID_PATTERN.test(name.slice(0, -5))).map((name) => name.slice(0, -5));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }

  async chains(): Promise<string[]> {
    try {
      return (await readdir(this.dir, { withFileTypes: true }))
        .filter((entry) => entry.isDirectory() && CHAIN_NAME_PATTERN.test(entry.name))
        .map((entry) => entry.name)
        .sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }

  async setAside(chain: string, batchId: string, suffix: string): Promise<string> {
    const path = this.locationOf(chain, batchId);
    const keptAs = `${path}.${suffix}`;
    await rename(path, keptAs);
    return keptAs;
  }

  /** The folder (or, before the first batch, its nearest existing parent) is writable; nothing is created. */
  async check(): Promise<void> {
    let at = this.dir;
    for (;;) {
      try {
        await access(at, constants.W_OK | constants.X_OK);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && dirname(at) !== at) {
          at = dirname(at);
          continue;
        }
        throw new ArchiveError("ACCESS_DENIED", `archive.dir ${this.dir}: cannot write there (${code ?? String(error)} on ${at}): fix the path or its permissions`, {
          cause: error,
        });
      }
    }
  }

  close(): void {}
}

async function syncDirectory(folder: string): Promise<void> {
  const directory = await open(folder, "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
