/**
 * Helpers for the backup, keys and demo tests: the `agentgpt` command as a process, batches settled by the real
 * Batcher and Settler on a `hardhat node`, and rewriting a backup archive the way an attacker (or bit rot) would.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";

import type { Redis } from "ioredis";

import { readTar, TarWriter } from "../../../relayer/backup/tar.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import type { SettlementRecord } from "../../../relayer/settler/settlement-store.js";
import type { ChainSuite } from "../../helpers/chain-suite.js";
import { pipeline, settleReceipts } from "../../helpers/pipeline.js";
import { REPO } from "../../deploy/local-node.js";

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/agentgpt.mjs ...args` with stdio piped (not a TTY), like a script or CI would run it. */
export function agentgpt(args: readonly string[], env: Record<string, string | undefined> = {}, options: { timeoutMs?: number; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, "bin", "agentgpt.mjs"), ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Settles `receipts` as one batch with the real Batcher and Settler (test/helpers/pipeline.ts); returns the settler's final record. */
export async function settleBatch(
  suite: ChainSuite,
  nodeUrl: string,
  redis: Redis,
  prefix: string,
  archiveDir: string,
  receipts: readonly Receipt[],
): Promise<SettlementRecord> {
  return settleReceipts(pipeline({ suite, rpcUrls: [nodeUrl], redis, prefix, archiveDir }), receipts);
}

export interface ArchiveEntry {
  name: string;
  bytes: Buffer;
}

/** Every entry of a .tar.gz backup, in order. */
export async function readArchive(path: string): Promise<ArchiveEntry[]> {
  const out: ArchiveEntry[] = [];
  for await (const entry of readTar(Readable.from([gunzipSync(await readFile(path))]))) out.push({ name: entry.name, bytes: entry.bytes });
  return out;
}

/** Writes `entries` as a .tar.gz at `path` (replacing it); with `fixManifest`, the manifest's hashes are made to match. */
export async function writeArchive(path: string, entries: ArchiveEntry[], options: { fixManifest?: boolean } = {}): Promise<void> {
  let list = entries;
  if (options.fixManifest === true) {
    const manifest = JSON.parse(list[0]!.bytes.toString("utf8")) as { entries: Array<{ path: string; size: number; sha256: string }> };
    for (const item of manifest.entries) {
      const entry = list.find((e) => e.name === item.path);
      if (entry === undefined) continue;
      item.size = entry.bytes.length;
      item.sha256 = createHash("sha256").update(entry.bytes).digest("hex");
    }
    list = [{ name: list[0]!.name, bytes: Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`) }, ...list.slice(1)];
  }
  const chunks: Buffer[] = [];
  const { PassThrough } = await import("node:stream");
  const sink = new PassThrough();
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  const writer = new TarWriter(sink);
  for (const entry of list) await writer.add(entry.name, entry.bytes, 1_700_000_000);
  await writer.finish();
  await writeFile(path, gzipSync(Buffer.concat(chunks)));
}

/** Rewrites the JSON entry `name` of the archive at `path` with `edit`, keeping the manifest consistent. */
export async function editJsonEntry(path: string, name: string, edit: (value: any) => void): Promise<void> {
  const entries = await readArchive(path);
  const entry = entries.find((e) => e.name === name);
  if (entry === undefined) throw new Error(`no entry ${name}`);
  const value = JSON.parse(entry.bytes.toString("utf8"));
  edit(value);
  entry.bytes = Buffer.from(`${JSON.stringify(value, null, 1)}\n`);
  await writeArchive(path, entries, { fixManifest: true });
}
