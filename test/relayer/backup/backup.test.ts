/**
 * `agentgpt litellm backup`, `verify` and `restore` as processes, on batches settled by the real Batcher and
 * Settler on a `hardhat node` (one with a row the contract rejected) plus one batch archived but never settled.
 * A good backup verifies; a tampered file, a wrong CID and forged on-chain references fail, naming the batch and
 * what differs; restore rebuilds the archive byte for byte and never replaces a differing file silently.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { buildBatch } from "../../../relayer/batcher/batch-file.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { BackupError, createBackup, LocalTarget, openTarget, restoreBackup, S3Target, verifyBackup, type References } from "../../../relayer/backup/index.js";
import { S3Archive } from "../../../relayer/batcher/s3-archive.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { SettlementStore, type SettlementRecord } from "../../../relayer/settler/settlement-store.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { writeRelayerConfig, type RelayerSetup } from "../../helpers/relayer-process.js";
import { S3_CREDENTIALS, startS3 } from "../../helpers/s3.js";
import { agentgpt, editJsonEntry, readArchive, settleBatch, writeArchive } from "./helpers.js";

describe("agentgpt litellm backup / verify / restore", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let setup: RelayerSetup;
  let location: string;
  let settled: SettlementRecord[];
  let pending: string;
  let backupFile: string;
  let backupName: string;

  before(async function () {
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 3 });
    redis = testRedis();
    prefix = uniquePrefix("backup");
    setup = await writeRelayerConfig({
      redisUrl: REDIS_URL,
      prefix,
      rpcUrls: [node.url],
      router: suite.routerAddress,
      payers: suite.payers.map((p) => p.address),
      chainId: suite.chainId,
    });
    location = await mkdtemp(join(tmpdir(), "agentgpt-backups-"));
    const [a, b, c] = suite.payers.map((p) => p.address);
    settled = [];
    settled.push(await settleBatch(suite, node.url, redis, prefix, setup.archiveDir, [receipt(a!, "openai", "gpt-4-turbo", 1200), receipt(b!, "groq", "mixtral-8x22b", 800), receipt(a!, "openai", "gpt-4-turbo", 40)]));
    // a row on an unpriced model: the contract rejects it (ModelNotPriced), the rest of the batch settles
    settled.push(await settleBatch(suite, node.url, redis, prefix, setup.archiveDir, [receipt(c!, "anthropic", "claude-3-opus", 900), receipt(a!, "openai", "gpt-3.5-unpriced", 500), receipt(b!, "openai", "gpt-4-turbo", 77)]));
    settled.push(await settleBatch(suite, node.url, redis, prefix, setup.archiveDir, Array.from({ length: 30 }, (_, i) => receipt([a!, b!, c!][i % 3]!, "groq", "mixtral-8x22b", 100 + i))));
    // sealed and archived, never sent: a batch the settler has not settled yet
    const unsent = { ...receipt(c!, "openai", "gpt-4-turbo", 333), chain: "local" };
    const built = await buildBatch([unsent], Date.now(), callsFromOf(unsent.startTime, 3600), {
      chain: "local",
      chainId: suite.chainId,
      router: suite.routerAddress,
      usageBucket: 3600,
      registry: { providerId: () => 1, modelId: () => 1 },
    });
    pending = built.file.batchId;
    await new LocalArchive(setup.archiveDir).write("local", pending, built.bytes);
  });

  after(async function () {
    await node?.stop();
    await dropPrefix(redis, prefix);
    redis.disconnect();
    await rm(setup.dir, { recursive: true, force: true });
    await rm(location, { recursive: true, force: true });
  });

  const target = () => ["--strategy", "local", "--location", location];

  /** the row of the second batch on the unpriced model (rows are ordered by payer address) */
  function unpricedRow(): number {
    return settled[1]!.outcome!.rejected[0]![0];
  }

  async function copyOf(name: string): Promise<{ name: string; path: string }> {
    // a copy under a new backup name (newer than the original), so each test tampers its own
    const copy = name.replace(/Z\.tar\.gz$/, `Z-${Math.floor(Math.random() * 1e6) + 2}.tar.gz`);
    await writeFile(join(location, copy), await readFile(join(location, name)));
    await writeFile(join(location, `${copy}.sha256`), await readFile(join(location, `${name}.sha256`)));
    return { name: copy, path: join(location, copy) };
  }

  /** verify in this process (the CLI prints the same report); `problems` joins every batch's and the archive's */
  async function verify(name: string, offline = false) {
    const where = new LocalTarget(location);
    const report = await verifyBackup({
      source: await where.open(name),
      name,
      recordedSha256: await where.recordedSha256(name),
      config: offline ? undefined : loadRelayerConfig(setup.configFile),
      progress: false,
    });
    const failed = report.batches.filter((b) => b.problems.length > 0).map((b) => b.batchId);
    const text = [...report.problems, ...report.batches.flatMap((b) => b.problems.map((p) => `${b.batchId}: ${p}`))].join("\n");
    return { report, failed, text };
  }

  async function restore(name: string, dir: string, overwrite = false) {
    const where = new LocalTarget(location);
    return restoreBackup({ source: await where.open(name), name, recordedSha256: await where.recordedSha256(name), archiveDir: dir, overwrite, progress: false });
  }

  async function resealSidecar(path: string, name: string): Promise<void> {
    const sha = createHash("sha256").update(await readFile(path)).digest("hex");
    await writeFile(`${path}.sha256`, `${sha}  ${name}\n`);
  }

  it("writes a compressed archive with a manifest, the batch files and every on-chain reference", async function () {
    const run = await agentgpt(["litellm", "backup", ...target(), "--config", setup.configFile]);
    expect(run.stderr, run.stderr).to.not.match(/\r|\[#/); // no progress bars on a pipe
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const names = (await readdir(location)).sort();
    expect(names).to.have.length(2);
    backupName = names[0]!;
    expect(backupName).to.match(/^agentgpt-backup-\d{8}T\d{6}Z\.tar\.gz$/);
    expect(names[1]).to.equal(`${backupName}.sha256`);
    backupFile = join(location, backupName);
    expect(run.stdout).to.include(`backup ${backupFile}`);
    expect(run.stdout).to.include("4 batches (3 settled on-chain, 1 not yet), 9 rows, 37 receipts");
    expect(run.stdout).to.include(`warning: batch ${pending} (local): not settled on-chain (yet)`);

    // standard tools read it: sha256sum and tar
    const sidecar = await readFile(`${backupFile}.sha256`, "utf8");
    expect(sidecar).to.equal(`${createHash("sha256").update(await readFile(backupFile)).digest("hex")}  ${backupName}\n`);
    const listed = execFileSync("tar", ["-tzf", backupFile], { encoding: "utf8" }).trim().split("\n");
    const batchIds = [...settled.map((r) => r.batchId), pending].sort();
    expect(listed).to.deep.equal(["manifest.json", "references.json", ...batchIds.map((id) => `batches/local/${id}.json`)]);

    const entries = await readArchive(backupFile);
    const manifest = JSON.parse(entries[0]!.bytes.toString());
    expect(manifest.format).to.equal("agentgpt-backup-v1");
    expect(manifest.totals).to.deep.equal({ batches: 4, receipts: 37, rows: 9, settled: 3, notSettled: 1 });
    for (const entry of entries.slice(1)) {
      const listedEntry = manifest.entries.find((e: { path: string }) => e.path === entry.name);
      expect(listedEntry, entry.name).to.deep.equal({ path: entry.name, size: entry.bytes.length, sha256: createHash("sha256").update(entry.bytes).digest("hex") });
    }
    // each batch file byte for byte as archived
    for (const id of batchIds) {
      const bytes = entries.find((e) => e.name === `batches/local/${id}.json`)!.bytes;
      expect(Buffer.compare(bytes, await readFile(join(setup.archiveDir, "local", `${id}.json`)))).to.equal(0);
    }
    const references = JSON.parse(entries[1]!.bytes.toString()) as References;
    for (const record of settled) {
      const reference = references.batches.find((r) => r.batchId === record.batchId)!;
      const info = await suite.router.batchInfo(record.batchId);
      expect(reference.settlement).to.deep.equal({
        txHash: record.txHash,
        block: record.block,
        blockHash: record.blockHash,
        rowsRoot: record.outcome!.rowsRoot,
        receiptsRoot: record.receiptsRoot,
        dataCid: record.cid,
        settledAt: Number(info.settledAt),
        releaseAt: Number(info.releaseAt),
        callsFrom: record.callsFrom,
        status: "escrowed",
        rowCount: record.rows,
        acceptedRows: record.outcome!.acceptedRows,
        rejected: record.outcome!.rejected,
        escrowed: record.outcome!.escrowed,
      });
      expect(reference.cid).to.equal(record.cid);
    }
    const second = (await new LocalArchive(setup.archiveDir).read("local", settled[1]!.batchId))!;
    expect(settled[1]!.outcome!.rejected).to.deep.equal([[second.rows.findIndex((row) => row.modelName === "gpt-3.5-unpriced"), "ModelNotPriced"]]);
    expect(references.batches.find((r) => r.batchId === pending)!.settlement).to.equal(null);
  });

  it("finds the same references without the settler's ledger (searched by settlement time)", async function () {
    const config = loadRelayerConfig(setup.configFile);
    const dir = await mkdtemp(join(tmpdir(), "agentgpt-backups-"));
    try {
      const withLedger = await createBackup({ config, archiveDir: setup.archiveDir, target: new LocalTarget(dir), ledger: (chain) => new SettlementStore(redis, prefix, chain), progress: false });
      const without = await createBackup({ config, archiveDir: setup.archiveDir, target: new LocalTarget(dir), progress: false, now: new Date(Date.now() + 1000) });
      const refs = async (name: string) => (await readArchive(join(dir, name)))[1]!.bytes.toString();
      expect(await refs(without.name)).to.equal(await refs(withLedger.name));
      expect(withLedger.manifest.totals.settled).to.equal(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("verifies a good backup against the chain", async function () {
    // these receipts were settled straight from the test, never ingested: they have no dedupe records to compare
    const run = await agentgpt(["litellm", "backup", "verify", ...target(), "--name", backupName, "--config", setup.configFile, "--verbose", "--skip-redis"]);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.include("matches its .sha256 file");
    expect(run.stdout).to.include("checked against the chain");
    for (const record of settled) expect(run.stdout).to.include(`ok batch ${record.batchId} (local): ${record.rows} rows, ${record.receipts} receipts, CID ${record.cid}`);
    expect(run.stdout).to.include(`ok batch ${pending} (local): 1 rows, 1 receipts`);
    expect(run.stdout).to.include("not settled on-chain");
    expect(run.stdout.trim().split("\n").at(-1)).to.equal("OK: all 4 batches verified");
  });

  it("fails on a tampered batch file, naming the batch and what differs (hash, roots, CID against the chain)", async function () {
    const { name, path } = await copyOf(backupName);
    const victim = settled[0]!.batchId;
    const entries = await readArchive(path);
    const entry = entries.find((e) => e.name === `batches/local/${victim}.json`)!;
    const original = entry.bytes.toString();
    // one receipt's token count changed: a plausible edit
    entry.bytes = Buffer.from(original.replace(/"tokens":1200,/, '"tokens":1100,'));
    expect(entry.bytes.toString()).to.not.equal(original);
    await writeArchive(path, entries);
    const run = await agentgpt(["litellm", "backup", "verify", ...target(), "--name", name, "--config", setup.configFile]);
    expect(run.code).to.equal(1);
    expect(run.stdout).to.include(`FAILED batch ${victim} (local):`);
    expect(run.stdout).to.match(new RegExp(`batches/local/${victim}\\.json has SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}: the entry was altered or corrupted`));
    expect(run.stdout).to.match(/row \d: 1240 tokens, its receipts add up to 1140/);
    expect(run.stdout).to.include(`is not the dataCid on-chain ${settled[0]!.cid}`);
    expect(run.stdout).to.include(`is not the receiptsRoot on-chain ${settled[0]!.receiptsRoot}`);
    expect(run.stdout).to.include("its .sha256 file says");
    expect(run.stdout).to.include("3 of 4 batches verified");
    expect(run.stderr).to.include(`agentgpt: backup ${name} failed verification: 1 batch(es)`);

    // the same edit with the manifest and the sidecar rewritten to match: the roots and the chain still tell
    await writeArchive(path, entries, { fixManifest: true });
    await resealSidecar(path, name);
    const offline = await verify(name, true);
    expect(offline.failed).to.deep.equal([victim]);
    expect(offline.text).to.not.include("the manifest says");
    expect(offline.text).to.include(`is not the recorded dataCid ${settled[0]!.cid}`);
    const online = await verify(name);
    expect(online.failed).to.deep.equal([victim]);
    expect(online.report.problems).to.deep.equal([]);
    expect(online.text).to.include(`${victim}: receipts root rebuilt from the receipts`);
    expect(online.text).to.include(`is not the receiptsRoot on-chain ${settled[0]!.receiptsRoot}`);
  });

  it("fails on a batch file whose call interval was moved: the id, the receipts' start times and the chain disagree", async function () {
    const { name, path } = await copyOf(backupName);
    const victim = settled[1]!;
    const entries = await readArchive(path);
    const entry = entries.find((e) => e.name === `batches/local/${victim.batchId}.json`)!;
    const original = entry.bytes.toString();
    const moved = victim.callsFrom - 3600;
    entry.bytes = Buffer.from(original.replace(`"callsFrom":${victim.callsFrom},`, `"callsFrom":${moved},`));
    expect(entry.bytes.toString()).to.not.equal(original);
    await writeArchive(path, entries, { fixManifest: true });
    await resealSidecar(path, name);
    const online = await verify(name);
    expect(online.failed).to.deep.equal([victim.batchId]);
    expect(online.text).to.include("but chain, router, callsFrom and the receipts derive");
    expect(online.text).to.include(`receipt(s) started outside [callsFrom ${moved}, +3600 s)`);
    expect(online.text).to.include(`the file's callsFrom ${moved} is not the callsFrom on-chain ${victim.callsFrom}`);
    expect(online.text).to.include(`the file's callsFrom ${moved} is not the recorded callsFrom ${victim.callsFrom}`);
  });

  it("fails on a wrong CID in the references, naming the batch and both CIDs", async function () {
    const { name, path } = await copyOf(backupName);
    const victim = settled[2]!;
    const forged = settled[0]!.cid;
    await editJsonEntry(path, "references.json", (refs: References) => {
      const reference = refs.batches.find((r) => r.batchId === victim.batchId)!;
      reference.cid = forged;
      reference.settlement!.dataCid = forged;
    });
    await resealSidecar(path, name);
    const { report, failed, text } = await verify(name);
    expect(report.ok).to.equal(false);
    expect(failed).to.deep.equal([victim.batchId]);
    expect(text).to.include(`${victim.batchId}: CID of the file's bytes ${victim.cid} is not the CID recorded in references.json ${forged}`);
    expect(text).to.include(`${victim.batchId}: recorded dataCid ${forged}, the chain says ${victim.cid}`);
  });

  it("fails on forged on-chain references: another transaction, a rejected row hidden, a settlement that never happened", async function () {
    const { name, path } = await copyOf(backupName);
    const [first, second] = settled;
    await editJsonEntry(path, "references.json", (refs: References) => {
      const a = refs.batches.find((r) => r.batchId === first!.batchId)!.settlement!;
      a.txHash = second!.txHash!;
      a.block = second!.block!;
      a.blockHash = second!.blockHash!;
      const b = refs.batches.find((r) => r.batchId === second!.batchId)!.settlement!;
      b.rejected = [];
      b.acceptedRows = 3;
      b.rowsRoot = first!.outcome!.rowsRoot; // anything but the truth
      const p = refs.batches.find((r) => r.batchId === pending)!;
      p.settlement = { ...b, txHash: first!.txHash!, dataCid: p.cid, receiptsRoot: p.receiptsRoot, rejected: [], acceptedRows: 1, rowCount: 1 };
    });
    await resealSidecar(path, name);
    const { report, failed, text } = await verify(name);
    expect(report.problems).to.deep.equal([]);
    expect(failed.sort()).to.deep.equal([first!.batchId, second!.batchId, pending].sort());
    expect(text).to.include(`${first!.batchId}: recorded txHash ${second!.txHash}, the chain says ${first!.txHash}`);
    expect(text).to.include(`${first!.batchId}: recorded block ${second!.block}, the chain says ${first!.block}`);
    expect(text).to.include(`${second!.batchId}: recorded rejected rows none, the chain says ${unpricedRow()}:ModelNotPriced`);
    expect(text).to.include(`${second!.batchId}: recorded rowsRoot ${first!.outcome!.rowsRoot}, the chain says ${second!.outcome!.rowsRoot}`);
    expect(text).to.include(
      `${pending}: the chain has no batch ${pending} on router ${suite.routerAddress} (batchInfo status 0), but the backup records it settled in tx ${first!.txHash}`,
    );
    // offline, a forged transaction hash is consistent with everything in the backup: only the chain exposes it
    expect((await verify(name, true)).failed).to.not.include(first!.batchId);
  });

  it("restores the archive directory byte for byte, and never replaces a differing file silently", async function () {
    const dir = await mkdtemp(join(tmpdir(), "agentgpt-restore-"));
    try {
      const args = ["litellm", "backup", "restore", ...target(), "--name", backupName, "--archive-dir", dir];
      const first = await agentgpt(args);
      expect(first.code, first.stdout + first.stderr).to.equal(0);
      expect(first.stdout).to.include("restored 4, already there 0, conflicts 0, refused 0");
      const ids = [...settled.map((r) => r.batchId), pending].sort();
      expect((await readdir(join(dir, "local"))).sort()).to.deep.equal(ids.map((id) => `${id}.json`));
      for (const id of ids) {
        expect(Buffer.compare(await readFile(join(dir, "local", `${id}.json`)), await readFile(join(setup.archiveDir, "local", `${id}.json`)))).to.equal(0);
      }
      const again = await restore(backupName, dir);
      expect([again.restored.length, again.unchanged.length, again.conflicts.length, again.refused.length, again.ok]).to.deep.equal([0, 4, 0, 0, true]);

      const victim = join(dir, "local", `${settled[1]!.batchId}.json`);
      const altered = Buffer.from((await readFile(victim, "utf8")).replace('"receipts":', '"receipts" :'));
      await writeFile(victim, altered);
      const conflict = await agentgpt(args);
      expect(conflict.code).to.equal(1);
      expect(conflict.stdout).to.include(`CONFLICT ${victim}: it differs from the backup`);
      expect(conflict.stdout).to.include("the backup's file is the one settled on-chain");
      expect(conflict.stdout).to.include("rerun with --overwrite");
      expect(Buffer.compare(await readFile(victim), altered)).to.equal(0); // untouched

      const overwrite = await restore(backupName, dir, true);
      expect(overwrite.ok).to.equal(true);
      expect(overwrite.conflicts.map((c) => [c.path, c.replaced, c.settledCid === c.backupCid])).to.deep.equal([[victim, true, true]]);
      expect(Buffer.compare(await readFile(victim), await readFile(join(setup.archiveDir, "local", `${settled[1]!.batchId}.json`)))).to.equal(0);
      const kept = (await readdir(join(dir, "local"))).filter((n) => n.includes(".replaced-"));
      expect(kept).to.have.length(1);
      expect(Buffer.compare(await readFile(join(dir, "local", kept[0]!)), altered)).to.equal(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses to restore a file whose bytes are not the ones recorded", async function () {
    const { name, path } = await copyOf(backupName);
    const entries = await readArchive(path);
    const entry = entries.find((e) => e.name === `batches/local/${settled[2]!.batchId}.json`)!;
    entry.bytes = Buffer.from(entry.bytes.toString().replace(/"tokens":10\d,/, '"tokens":99,'));
    await writeArchive(path, entries, { fixManifest: true });
    const dir = await mkdtemp(join(tmpdir(), "agentgpt-restore-"));
    try {
      const report = await restore(name, dir);
      expect(report.ok).to.equal(false);
      expect(report.restored.length).to.equal(3);
      expect(report.refused.map((r) => r.batchId)).to.deep.equal([settled[2]!.batchId]);
      expect(report.refused[0]!.problems.join("\n")).to.include(`is not the dataCid settled on-chain ${settled[2]!.cid}`);
      expect((await readdir(join(dir, "local"))).sort()).to.not.include(`${settled[2]!.batchId}.json`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lists backups and takes the latest by default", async function () {
    const run = await agentgpt(["litellm", "backup", "list", ...target()]);
    expect(run.code).to.equal(0);
    const names = run.stdout.trim().split("\n");
    expect(names[0]).to.equal(backupName);
    expect(names.length).to.be.greaterThan(2);
    expect(names).to.deep.equal(await new LocalTarget(location).list());
  });

  it("names the flag and the fix on bad input", async function () {
    const strategy = await agentgpt(["litellm", "backup", "--strategy", "tape", "--location", location, "--config", setup.configFile]);
    expect(strategy.code).to.equal(2);
    expect(strategy.stderr).to.include("--strategy tape: one of local, s3, glacier");
    const noConfig = await agentgpt(["litellm", "backup", "verify", ...target()]);
    expect(noConfig.code).to.equal(2);
    expect(noConfig.stderr).to.include("--config <file>: verify checks every batch against the chain");
    expect(() => openTarget({ strategy: "glacier", location: "eu-central-1" }, {})).to.throw("--strategy glacier: name the bucket with --bucket <name> or AGENTGPT_BACKUP_BUCKET");
    expect(() => openTarget({ strategy: "s3", location: "mars", bucket: "b-1" }, {})).to.throw("--location mars: give an AWS region, e.g. eu-central-1");
  });

  it("S3 (s3rver): backs up an S3 archive to a GLACIER-class bucket, verifies it, restores it into another prefix; multipart; clear errors", async function () {
    const s3 = await startS3(["agentgpt-archive", "agentgpt-backups"]);
    const opened: Array<{ close(): void }> = [];
    const archiveAt = (prefix: string) => {
      const archive = new S3Archive({ bucket: "agentgpt-archive", prefix, endpoint: s3.endpoint, credentials: S3_CREDENTIALS });
      opened.push(archive);
      return archive;
    };
    const targetOf = (options: { bucket?: string; credentials?: typeof S3_CREDENTIALS; partSize?: number } = {}) => {
      const t = new S3Target({
        region: "us-east-1",
        bucket: options.bucket ?? "agentgpt-backups",
        prefix: "backups/",
        storageClass: "GLACIER",
        endpoint: s3.endpoint,
        credentials: options.credentials ?? S3_CREDENTIALS,
        ...(options.partSize === undefined ? {} : { partSize: options.partSize }),
      });
      opened.push(t);
      return t;
    };
    try {
      // the relayer's archive, moved to a bucket
      const local = new LocalArchive(setup.archiveDir);
      const source = archiveAt("src/");
      const ids = (await local.list("local")).sort();
      for (const id of ids) await source.write("local", id, (await local.readBytes("local", id))!);
      const config = loadRelayerConfig(setup.configFile);
      const where = targetOf();
      const made = await createBackup({ config, archive: source, target: where, progress: false });
      expect(made.location).to.equal(`s3://agentgpt-backups/backups/${made.name}`);
      expect(made.manifest.totals.batches).to.equal(ids.length);
      expect(made.manifest.source.archiveDir).to.equal("s3://agentgpt-archive/src/");
      expect(await where.list()).to.deep.equal([made.name]);
      expect(await where.recordedSha256(made.name)).to.equal(made.sha256);

      const verified = await verifyBackup({ source: await where.open(made.name), name: made.name, recordedSha256: await where.recordedSha256(made.name), config, progress: false });
      expect(verified.ok, verified.problems.join("\n")).to.equal(true);

      const restoredInto = archiveAt("restored/");
      const report = await restoreBackup({ source: await where.open(made.name), name: made.name, recordedSha256: made.sha256, archive: restoredInto, progress: false });
      expect(report.ok).to.equal(true);
      expect(report.restored.sort()).to.deep.equal(ids.map((id) => `s3://agentgpt-archive/restored/local/${id}.json`).sort());
      for (const id of ids) expect(Buffer.compare(Buffer.from((await restoredInto.readBytes("local", id))!), Buffer.from((await local.readBytes("local", id))!)), id).to.equal(0);
      // a second restore changes nothing
      const again = await restoreBackup({ source: await where.open(made.name), name: made.name, recordedSha256: made.sha256, archive: restoredInto, progress: false });
      expect(again.restored).to.deep.equal([]);
      expect(again.unchanged.length).to.equal(ids.length);
      // a name that exists is never replaced
      const big = join(location, "big.bin");
      await writeFile(big, Buffer.alloc(11 * 1024 * 1024, 7));
      const bigSha = createHash("sha256").update(await readFile(big)).digest("hex");
      const name = "agentgpt-backup-20200101T000000Z.tar.gz";
      // multipart: 11 MiB in parts of 5 MiB (three parts), read back whole
      const multipart = targetOf({ partSize: 5 * 1024 * 1024 });
      expect(await multipart.put(name, big, bigSha)).to.equal(`s3://agentgpt-backups/backups/${name}`);
      const back = createHash("sha256");
      for await (const chunk of await multipart.open(name)) back.update(chunk as Buffer);
      expect(back.digest("hex")).to.equal(bigSha);
      try {
        await multipart.put(name, big, bigSha);
        expect.fail("replaced a backup");
      } catch (error) {
        expect((error as Error).message).to.equal(`s3://agentgpt-backups/backups/${name} exists already: backups are never replaced`);
      }
      await rm(big);

      // errors: a missing bucket, refused credentials (never printed), a missing backup
      const refusals: BackupError[] = [];
      for (const attempt of [() => targetOf({ bucket: "no-such-bucket" }).list(), () => targetOf({ credentials: { accessKeyId: "AKIAWRONGKEY0000TEST", secretAccessKey: "very-secret-value-42" } }).list(), () => where.open("agentgpt-backup-20000101T000000Z.tar.gz")]) {
        try {
          await attempt();
          expect.fail("no error");
        } catch (error) {
          expect(error).to.be.instanceOf(BackupError);
          refusals.push(error as BackupError);
        }
      }
      expect(refusals.map((e) => e.code)).to.deep.equal(["TARGET_FAILED", "CREDENTIALS", "NO_BACKUP"]);
      expect(refusals[0]!.message).to.include(`the bucket "no-such-bucket" does not exist at ${s3.endpoint}`);
      expect(refusals[1]!.message).to.include("S3 refused the credentials (InvalidAccessKeyId)");
      expect(JSON.stringify(refusals.map((e) => [e.message, e.stack]))).to.not.match(/very-secret-value|AKIAWRONGKEY/);

      // the CLI: credentials from the environment (the default chain), the endpoint from AGENTGPT_S3_ENDPOINT
      const listed = await agentgpt(["litellm", "backup", "list", "--strategy", "glacier", "--location", "us-east-1", "--bucket", "agentgpt-backups", "--prefix", "backups/"], {
        AGENTGPT_S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: "S3RVER",
        AWS_SECRET_ACCESS_KEY: "S3RVER",
      });
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout).to.equal(`${name}\n${made.name}\n`);
    } finally {
      for (const o of opened) o.close();
      await s3.close();
    }
  });
});
