/**
 * Backups in a local directory: `<dir>/<name>` and `<dir>/<name>.sha256`. The archive is moved in with a rename
 * after an fsync (a crash leaves a complete backup or none), and an existing name is never replaced.
 */
import { createReadStream } from "node:fs";
import { copyFile, link, mkdir, open, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";

import { BackupError } from "../errors.js";
import { BACKUP_NAME_PATTERN, compareBackupNames } from "../manifest.js";
import { parseSha256Line, sha256Line, type BackupTarget } from "./target.js";

export class LocalTarget implements BackupTarget {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  get label(): string {
    return `local ${this.dir}`;
  }

  async put(name: string, localFile: string, sha256: string): Promise<string> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (error) {
      throw new BackupError("TARGET_FAILED", `--location ${this.dir}: cannot create the directory (${code(error)})`, { cause: error });
    }
    const path = join(this.dir, name);
    const partial = `${path}.partial-${process.pid}`;
    try {
      await copyFile(localFile, partial);
      await fsync(partial);
      // link() fails when the name exists: a backup is never replaced.
      await link(partial, path);
      await rm(partial, { force: true });
      const sidecar = `${path}.sha256`;
      await writeDurably(`${sidecar}.partial-${process.pid}`, sha256Line(sha256, name));
      await rename(`${sidecar}.partial-${process.pid}`, sidecar);
      await fsync(this.dir);
    } catch (error) {
      await rm(partial, { force: true }).catch(() => undefined);
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        throw new BackupError("TARGET_FAILED", `${path} exists already: backups are never replaced; run the backup again (a new name)`, { cause: error });
      }
      throw new BackupError("TARGET_FAILED", `--location ${this.dir}: cannot write the backup (${code(error)})`, { cause: error });
    }
    return path;
  }

  async open(name: string): Promise<Readable> {
    const path = join(this.dir, name);
    try {
      await stat(path);
    } catch {
      throw new BackupError("NO_BACKUP", `no backup ${name} in ${this.dir}: list them with \`agentgpt litellm backup list --strategy local --location ${this.dir}\``);
    }
    return createReadStream(path);
  }

  async recordedSha256(name: string): Promise<string | null> {
    try {
      return parseSha256Line(await readFile(join(this.dir, `${name}.sha256`), "utf8"));
    } catch {
      return null;
    }
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((name) => BACKUP_NAME_PATTERN.test(name)).sort(compareBackupNames);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new BackupError("TARGET_FAILED", `--location ${this.dir}: cannot list the directory (${code(error)})`, { cause: error });
    }
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function code(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}
