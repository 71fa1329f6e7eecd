/**
 * The pieces of the backup format on their own: the ustar writer and reader against the system's `tar`, the SigV4
 * signer against AWS's published S3 example, backup names and their order, and progress bars that stay silent
 * off a terminal.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";

import { expect } from "chai";

import { backupName, compareBackupNames } from "../../../relayer/backup/manifest.js";
import { createProgress } from "../../../relayer/backup/progress.js";
import { readTar, TarError, TarWriter, tarHeader } from "../../../relayer/backup/tar.js";

async function tarBytes(entries: Array<[string, Buffer]>): Promise<Buffer> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  const writer = new TarWriter(sink);
  for (const [name, bytes] of entries) await writer.add(name, bytes, 1_700_000_000);
  await writer.finish();
  return Buffer.concat(chunks);
}

async function entriesOf(bytes: Buffer) {
  const out: Array<[string, string]> = [];
  for await (const entry of readTar(Readable.from([bytes]))) out.push([entry.name, entry.bytes.toString()]);
  return out;
}

describe("backup format", function () {
  let dir: string;
  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-tar-"));
  });
  afterEach(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  describe("tar", function () {
    const long = `batches/${"a-chain-name-of-32-characters-xx"}/0x${"ab".repeat(32)}.json`;

    it("writes archives the system tar lists and extracts exactly, long names included", async function () {
      const entries: Array<[string, Buffer]> = [
        ["manifest.json", Buffer.from('{"a":1}\n')],
        [long, Buffer.from("x".repeat(1000))],
        ["empty.json", Buffer.alloc(0)],
        ["block.bin", Buffer.alloc(512, 7)],
      ];
      const file = join(dir, "t.tar.gz");
      await writeFile(file, gzipSync(await tarBytes(entries)));
      expect(Buffer.byteLength(long)).to.be.greaterThan(100);
      expect(execFileSync("tar", ["-tzf", file], { encoding: "utf8" }).trim().split("\n")).to.deep.equal(entries.map(([name]) => name));
      const out = join(dir, "out");
      await mkdir(out);
      execFileSync("tar", ["-xzf", file, "-C", out]);
      for (const [name, bytes] of entries) expect(Buffer.compare(await readFile(join(out, name)), bytes), name).to.equal(0);
    });

    it("reads what the system tar writes (ustar), skipping directories", async function () {
      const src = join(dir, "src");
      await mkdir(join(src, "batches", "local"), { recursive: true });
      await writeFile(join(src, "manifest.json"), "m");
      await writeFile(join(src, "batches", "local", "b.json"), "b".repeat(700));
      const file = join(dir, "sys.tar");
      execFileSync("tar", ["--format=ustar", "-cf", file, "-C", src, "manifest.json", "batches"]);
      expect(await entriesOf(await readFile(file))).to.deep.equal([
        ["manifest.json", "m"],
        ["batches/local/b.json", "b".repeat(700)],
      ]);
    });

    it("refuses corrupt, truncated and hostile archives", async function () {
      const good = await tarBytes([["a.json", Buffer.from("hello")]]);
      const corrupt = Buffer.from(good);
      corrupt[10] = corrupt[10]! ^ 1;
      await expectError(entriesOf(corrupt), "checksum does not match");
      await expectError(entriesOf(good.subarray(0, 600)), "ends in the middle of an entry");
      await expectError(entriesOf(good.subarray(0, 1024)), "without its end-of-archive marker");
      const big = Buffer.concat([tarHeader("big.json", 10_000, 0), Buffer.alloc(10_240), Buffer.alloc(1024)]);
      let caught: unknown;
      try {
        for await (const _ of readTar(Readable.from([big]), { maxEntryBytes: 5000 })) void _;
      } catch (error) {
        caught = error;
      }
      expect((caught as Error).message).to.equal("entry big.json is 10000 bytes, above the 5000-byte limit");
      expect(() => tarHeader("../etc/passwd", 1, 0)).to.throw(TarError, "is not a relative path");
      expect(() => tarHeader(`${"x".repeat(101)}`, 1, 0)).to.throw(TarError, "too long for ustar");
    });
  });

  it("names backups by UTC time, orders them as made, never reuses a name", function () {
    const at = new Date("2025-02-08T12:00:00.123Z");
    const first = backupName(at);
    expect(first).to.equal("agentgpt-backup-20250208T120000Z.tar.gz");
    const second = backupName(at, new Set([first]));
    expect(second).to.equal("agentgpt-backup-20250208T120000Z-2.tar.gz");
    const tenth = "agentgpt-backup-20250208T120000Z-10.tar.gz";
    const later = "agentgpt-backup-20250208T120001Z.tar.gz";
    expect([later, tenth, second, first].sort(compareBackupNames)).to.deep.equal([first, second, tenth, later]);
  });

  it("draws progress on a terminal only", function () {
    const written: string[] = [];
    const tty = { isTTY: true, columns: 80, write: (text: string) => written.push(text) > 0 };
    let clock = 0;
    const bar = createProgress("reading batches", 4, { stream: tty, enabled: true, now: () => (clock += 200) });
    bar.tick();
    bar.tick(3);
    bar.done();
    expect(written[0]).to.match(/^\rreading batches \[#+-+\] 1\/4 25%$/);
    expect(written[1]).to.match(/^\rreading batches \[#+\] 4\/4 100%$/);
    expect(written).to.have.length(3);
    const piped: string[] = [];
    const pipe = { isTTY: false, write: (text: string) => piped.push(text) > 0 };
    const quiet = createProgress("reading batches", 4, { stream: pipe });
    quiet.tick(4);
    quiet.done();
    expect(piped).to.deep.equal([]);
  });
});

async function expectError(promise: Promise<unknown>, text: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect((error as Error).message).to.include(text);
    return;
  }
  expect.fail(`expected an error with "${text}"`);
}
