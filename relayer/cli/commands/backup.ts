/**
 * `agentgpt litellm backup ...`: cold-storage backups of the billing data, with proofs. Logic lives in
 * relayer/backup; this file parses options and prints.
 *
 *   agentgpt litellm backup  --strategy local --location DIR --config FILE     make a backup (a new archive each time)
 *   agentgpt litellm backup list    --strategy local --location DIR             the backups held there
 *   agentgpt litellm backup verify  --strategy local --location DIR --config FILE [--name NAME] [--offline]
 *   agentgpt litellm backup restore --strategy local --location DIR --config FILE [--name NAME] [--overwrite] [--dry-run] [--ipfs URL]
 *
 * With --config, restore also rebuilds ingest's dedupe records in the config's Redis (from every batch file of the
 * archive, and from the chain for settled batches missing from it), and verify compares them with the backup's
 * receipts (skip with --skip-redis): see relayer/backup/dedupe-records.ts.
 *
 * `--strategy s3|glacier --location REGION --bucket NAME` keeps the archives in S3 instead (see
 * relayer/backup/targets/s3-target.ts). verify and restore take the latest backup unless --name says which.
 * Exit status: 0 all good, 1 a verification or restore found problems, 2 bad input, 3 Redis or chain unreachable.
 */
import type { Command } from "commander";
import type { Redis } from "ioredis";

import {
  BackupError,
  createBackup,
  openBackupChain,
  openTarget,
  rebuildDedupe,
  restoreBackup,
  verifyBackup,
  type BackupChain,
  type BackupTarget,
  type DedupeAgreement,
  type DedupeRebuildReport,
  type RestoreReport,
  type VerifyReport,
} from "../../backup/index.js";
import { ChainError, redactUrls } from "../../chain/index.js";
import { loadRelayerConfig, type RelayerConfig } from "../../config/index.js";
import { IpfsClient } from "../../disputes/ipfs.js";
import { asRedis, connectRedis, createProducerRedis, createRedis, describeRedisTarget, isClusterTarget, ReceiptStore } from "../../queue/index.js";
import { archiveDir } from "../../settler/runtime.js";
import { SettlementStore } from "../../settler/settlement-store.js";
import { UserError } from "../errors.js";
import { userFacing } from "./relayer.js";

interface TargetFlags {
  strategy?: string;
  location?: string;
  bucket?: string;
  prefix?: string;
}

interface CommonFlags extends TargetFlags {
  config?: string;
  deployments?: string;
  json?: boolean;
  progress: boolean;
}

function withTarget(command: Command): Command {
  return command
    .option("--strategy <strategy>", "local (a directory), s3 or glacier (an S3 bucket; glacier = cold storage class)")
    .option("--location <where>", "local: the directory; s3/glacier: the AWS region, e.g. eu-central-1")
    .option("--bucket <name>", "s3/glacier: the bucket (default $AGENTGPT_BACKUP_BUCKET)")
    .option("--prefix <prefix>", 's3/glacier: key prefix (default $AGENTGPT_BACKUP_PREFIX or "agentgpt-backups/")')
    .option("--no-progress", "no progress bars (they are drawn only on a terminal anyway)");
}

function target(flags: TargetFlags): BackupTarget {
  if (flags.strategy === undefined) throw new UserError("--strategy: give local (a directory), s3 or glacier, e.g. --strategy local --location /var/backups/agentgpt");
  if (flags.location === undefined) throw new UserError(`--location: give ${flags.strategy === "local" ? "the backup directory" : "the AWS region, e.g. eu-central-1"}`);
  return openTarget({ strategy: flags.strategy, location: flags.location, bucket: flags.bucket, prefix: flags.prefix });
}

function load(file: string | undefined, why: string): RelayerConfig {
  if (file === undefined) throw new UserError(`--config <file>: the relayer configuration is needed ${why}`);
  try {
    return loadRelayerConfig(file);
  } catch (error) {
    throw userFacing(error, file);
  }
}

/** Maps known errors to UserError (message kept); URLs are redacted from anything else. */
function run<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      if (error instanceof BackupError) {
        const code = error.code === "NO_CHAIN" || error.code === "TARGET_FAILED" ? 3 : 2;
        throw new UserError(redactUrls(error.message), code, { cause: error });
      }
      if (error instanceof ChainError) throw new UserError(redactUrls(error.message), 2, { cause: error });
      if (error instanceof Error && !(error instanceof UserError)) {
        error.message = redactUrls(error.message);
        if (error.stack !== undefined) error.stack = redactUrls(error.stack);
      }
      throw error;
    }
  };
}

/** The backup to read: --name, else the newest one at the target. */
async function chooseBackup(where: BackupTarget, name: string | undefined): Promise<string> {
  if (name !== undefined) return name;
  const names = await where.list();
  const latest = names.at(-1);
  if (latest === undefined) throw new UserError(`no backups at ${where.label}: make one with \`agentgpt litellm backup --strategy ... --location ... --config FILE\``);
  return latest;
}

/** The settler's ledger in Redis, when it answers within 2 s (block hints for the references); null otherwise. */
async function ledger(config: RelayerConfig): Promise<Redis | null> {
  const redis = asRedis(createRedis(config.redis, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: "agentgpt-backup",
  }));
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch {
    redis.disconnect();
    process.stderr.write("agentgpt: the settler's ledger (Redis) does not answer: each batch's settlement block is searched by time instead (slower)\n");
    return null;
  }
}

async function backup(flags: CommonFlags): Promise<void> {
  const where = target(flags);
  const config = load(flags.config, "to find the archive directory (archive.dir) and the chains (chains:)");
  const dir = archiveDir(config);
  const redis = await ledger(config);
  try {
    const summary = await createBackup({
      config,
      archiveDir: dir,
      target: where,
      ledger: redis === null ? undefined : (chain) => new SettlementStore(redis, config.redis.prefix, chain),
      deploymentsDir: flags.deployments,
      progress: flags.progress ? undefined : false,
    });
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ name: summary.name, location: summary.location, sha256: summary.sha256, bytes: summary.bytes, totals: summary.manifest.totals, warnings: summary.warnings }, null, 2)}\n`);
      return;
    }
    const t = summary.manifest.totals;
    const lines = [
      `backup ${summary.location}`,
      `  ${t.batches} batches (${t.settled} settled on-chain, ${t.notSettled} not yet), ${t.rows} rows, ${t.receipts} receipts, from ${dir}`,
      ...summary.manifest.chains.map((chain) => `  chain ${chain.name} (${chain.chainId}): router ${chain.router}, read at block ${chain.head.number}`),
      `  ${summary.bytes} bytes, sha256 ${summary.sha256}`,
      ...summary.warnings.sort().map((warning) => `  warning: ${warning}`),
      `Check it with: agentgpt litellm backup verify --strategy ${flags.strategy} --location ${flags.location} --name ${summary.name} --config ${flags.config}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    redis?.disconnect();
  }
}

async function list(flags: CommonFlags): Promise<void> {
  const where = target(flags);
  const names = await where.list();
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(names)}\n`);
    return;
  }
  process.stdout.write(names.length === 0 ? `no backups at ${where.label}\n` : `${names.join("\n")}\n`);
}

type VerifyFlags = CommonFlags & { name?: string; offline?: boolean; verbose?: boolean; skipRedis?: boolean };

async function verify(flags: VerifyFlags): Promise<void> {
  const where = target(flags);
  if (flags.offline !== true && flags.config === undefined) {
    throw new UserError("--config <file>: verify checks every batch against the chain (chains: in the config); or pass --offline to check only hashes, roots and CIDs");
  }
  const config = flags.offline === true ? undefined : load(flags.config, "to reach the chains");
  const name = await chooseBackup(where, flags.name);
  const store = config === undefined || flags.skipRedis === true ? null : await openDedupeStore(config, flags.config!, ", or pass --skip-redis to verify without it");
  try {
    const report = await verifyBackup({
      source: await where.open(name),
      name,
      recordedSha256: await where.recordedSha256(name),
      config,
      deploymentsDir: flags.deployments,
      progress: flags.progress ? undefined : false,
      dedupe: store === null ? undefined : { store, dedupeTtlMs: config!.ingest.dedupeTtlMs },
    });
    if (flags.json === true) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(`${describeVerify(report, flags.verbose === true).join("\n")}\n`);
    if (!report.ok) {
      const bad = report.batches.filter((batch) => batch.problems.length > 0).length;
      const redis = report.dedupe?.agrees === false ? ", and Redis's dedupe records disagree with it" : "";
      throw new UserError(`backup ${name} failed verification: ${bad} batch(es) and ${report.problems.length} archive problem(s)${redis}, listed above`, 1);
    }
  } finally {
    await store?.redis.quit().catch(() => store.redis.disconnect());
  }
}

/** Ingest's record store in the config's Redis (redis.url, redis.prefix), connected. */
async function openDedupeStore(config: RelayerConfig, file: string, otherwise = ""): Promise<ReceiptStore> {
  const redis = createProducerRedis(config.redis, { commandTimeoutMs: Math.max(config.redis.commandTimeoutMs, 10_000) });
  try {
    await connectRedis(redis, config.redis);
  } catch (error) {
    redis.disconnect();
    throw new UserError(`cannot reach Redis at ${describeRedisTarget(config.redis)} (redis.url in ${file}): start it, or fix redis.url${otherwise}`, 3, { cause: error });
  }
  return new ReceiptStore(redis, {
    prefix: config.redis.prefix,
    dedupeTtlMs: config.ingest.dedupeTtlMs,
    shards: isClusterTarget(config.redis) ? config.redis.shards : null,
  });
}

function describeDedupe(dedupe: DedupeAgreement): string[] {
  const lines = [
    `  Redis dedupe records: ${dedupe.present} of ${dedupe.expected} receipts of the backup have one` +
      `${dedupe.expired > 0 ? ` (${dedupe.expired} more were received over dedupe_ttl ago: not expected)` : ""}; ` +
      `${dedupe.extra} queued record(s) for calls not in this backup (received since, or rebuilt from the chain)`,
  ];
  if (dedupe.missing.length > 0) {
    lines.push(`  PROBLEM: ${dedupe.missing.length} billed call(s) have no dedupe record, so a re-send would be billed again: ${dedupe.missing.slice(0, 5).join(", ")}${dedupe.missing.length > 5 ? ", ..." : ""}`);
  }
  for (const wrong of dedupe.wrong.slice(0, 5)) lines.push(`  PROBLEM: dedupe record of ${wrong.id}: ${wrong.why}`);
  if (dedupe.wrong.length > 5) lines.push(`  PROBLEM: ... and ${dedupe.wrong.length - 5} more such record(s)`);
  if (dedupe.keysMissing.length > 0) {
    lines.push(`  PROBLEM: ${dedupe.keysMissing.length} reused call id(s) have no record of their own, so a re-send would take the free id: ${dedupe.keysMissing.slice(0, 5).join(", ")}`);
  }
  if (dedupe.otherFingerprint > 0) lines.push(`  note: ${dedupe.otherFingerprint} record(s) have another fingerprint than the receipt's (a re-send is kept as a conflict, not billed)`);
  if (!dedupe.agrees) lines.push("  Rebuild the records with: agentgpt litellm backup restore ... --config FILE (it never replaces a record)");
  return lines;
}

function describeVerify(report: VerifyReport, verbose: boolean): string[] {
  const t = report.manifest.totals;
  const lines = [
    `backup ${report.name} (made ${report.manifest.createdAt} by ${report.manifest.createdBy}): ${t.batches} batches, ${t.rows} rows, ${t.receipts} receipts`,
    `  archive sha256 ${report.sha256.computed}${report.sha256.recorded === null ? " (no .sha256 file to compare)" : report.sha256.recorded === report.sha256.computed ? " matches its .sha256 file" : ` but its .sha256 file says ${report.sha256.recorded}`}`,
    report.checkedAgainstChain ? "  checked against the chain (batchInfo, BatchSettled and RowRejected logs)" : "  offline: checked against the recorded references only, not the chain",
  ];
  for (const problem of report.problems) lines.push(`  PROBLEM: ${problem}`);
  if (report.dedupe !== null) lines.push(...describeDedupe(report.dedupe));
  for (const batch of report.batches) {
    const head = `batch ${batch.batchId} (${batch.chain})`;
    if (batch.problems.length > 0) {
      lines.push(`  FAILED ${head}:`);
      for (const problem of batch.problems) lines.push(`    - ${problem}`);
    } else if (verbose) {
      lines.push(`  ok ${head}: ${batch.rows} rows, ${batch.receipts} receipts, CID ${batch.cid}${batch.notes.length > 0 ? ` (${batch.notes.join("; ")})` : ""}`);
    }
    if (batch.problems.length > 0 || !verbose) for (const note of batch.notes) lines.push(`    note (${batch.batchId.slice(0, 10)}…): ${note}`);
  }
  const good = report.batches.filter((batch) => batch.problems.length === 0).length;
  const redis = report.dedupe === null ? "" : report.dedupe.agrees ? ", Redis's dedupe records agree" : ", Redis's dedupe records DISAGREE";
  lines.push(report.ok ? `OK: all ${good} batches verified${redis}` : `${good} of ${report.batches.length} batches verified${redis}`);
  return lines;
}

type RestoreFlags = CommonFlags & { name?: string; archiveDir?: string; overwrite?: boolean; dryRun?: boolean; ipfs?: string; ipfsApi?: string };

async function restore(flags: RestoreFlags): Promise<void> {
  const where = target(flags);
  if (flags.archiveDir === undefined && flags.config === undefined) {
    throw new UserError("--config <file> (restores into its archive.dir, and the dedupe records into its Redis) or --archive-dir <dir>: where to rebuild the archive");
  }
  const config = flags.config === undefined ? undefined : load(flags.config, "to find archive.dir and Redis");
  const ipfs = ipfsOf(flags, config);
  const dir = flags.archiveDir ?? archiveDir(config!);
  const name = await chooseBackup(where, flags.name);
  const report = await restoreBackup({
    source: await where.open(name),
    name,
    recordedSha256: await where.recordedSha256(name),
    archiveDir: dir,
    overwrite: flags.overwrite,
    dryRun: flags.dryRun,
    progress: flags.progress ? undefined : false,
  });
  const dedupe = config === undefined || flags.dryRun === true ? null : await restoreDedupe(config, flags, dir, ipfs);
  if (flags.json === true) process.stdout.write(`${JSON.stringify({ ...report, dedupe }, null, 2)}\n`);
  else {
    const lines = describeRestore(report, flags.dryRun === true);
    if (flags.dryRun === true) lines.push("  dedupe records: rebuilt from the archive by a real restore (with --config), not in a dry run");
    else if (dedupe === null) lines.push("  dedupe records NOT rebuilt: pass --config FILE (its Redis), or LiteLLM logs re-sent after the restore are billed again");
    else lines.push(...describeRebuild(dedupe.report, dedupe.problems));
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  if (!report.ok) throw new UserError(`restore of ${name} into ${dir} is incomplete: see the conflicts and problems above`, 1);
  if (dedupe !== null && (dedupe.problems.length > 0 || dedupe.report.unrebuilt.length > 0 || dedupe.report.problems.length > 0)) {
    throw new UserError(`restore of ${name}: the dedupe records of some billed calls could not be rebuilt (listed above): re-sends of those calls would be billed again`, 1);
  }
}

function ipfsOf(flags: RestoreFlags, config: RelayerConfig | undefined): IpfsClient | undefined {
  if (flags.ipfsApi !== undefined && flags.ipfsApi !== "gateway" && flags.ipfsApi !== "kubo") throw new UserError(`--ipfs-api ${flags.ipfsApi}: gateway or kubo`);
  const url = flags.ipfs ?? config?.reconciler?.ipfs?.url;
  if (url === undefined) return undefined;
  if (!/^https?:\/\/\S+$/.test(url)) throw new UserError(`--ipfs "${url}": an http:// or https:// URL`);
  const api = (flags.ipfsApi as "gateway" | "kubo" | undefined) ?? (flags.ipfs === undefined ? config?.reconciler?.ipfs?.api : undefined);
  return new IpfsClient({ url, api });
}

/** Rebuilds ingest's dedupe records in the config's Redis; chains that cannot be reached are problems, not fatal. */
async function restoreDedupe(
  config: RelayerConfig,
  flags: RestoreFlags,
  dir: string,
  ipfs: IpfsClient | undefined,
): Promise<{ report: DedupeRebuildReport; problems: string[] }> {
  const problems: string[] = [];
  const chains: BackupChain[] = [];
  const store = await openDedupeStore(config, flags.config!);
  try {
    for (const chain of config.chains) {
      if (chain.rpcUrls.length === 0) {
        problems.push(`chains.${chain.name} has no rpc_urls: its settled batches missing from the archive were not looked for`);
        continue;
      }
      try {
        chains.push(await openBackupChain(chain, { deploymentsDir: flags.deployments }));
      } catch (error) {
        if (!(error instanceof BackupError || error instanceof ChainError)) throw error;
        problems.push(`${redactUrls(error.message)}: its settled batches missing from the archive were not looked for`);
      }
    }
    const report = await rebuildDedupe({ store, archiveDir: dir, dedupeTtlMs: config.ingest.dedupeTtlMs, chains, ipfs });
    return { report, problems };
  } finally {
    for (const chain of chains) chain.close();
    await store.redis.quit().catch(() => store.redis.disconnect());
  }
}

function describeRebuild(report: DedupeRebuildReport, problems: readonly string[]): string[] {
  const lines = [
    `  dedupe records: ${report.receipts} billed call(s) in ${report.archiveBatches} archived batch(es)` +
      `${report.chainBatches.length > 0 ? ` and ${report.chainBatches.length} fetched by CID` : ""}; ` +
      `written ${report.written}, already there ${report.present}, expired ${report.expired}` +
      `${report.keysFilled > 0 ? `, reused ids held ${report.keysFilled}` : ""}`,
  ];
  for (const scanned of report.chainsScanned) {
    lines.push(`  chain ${scanned.chain}: ${scanned.settled} batch(es) settled in blocks ${scanned.fromBlock}-${scanned.toBlock} (the last dedupe_ttl)`);
  }
  for (const batch of report.notSettled) {
    lines.push(`  batch ${batch.batchId} (${batch.chain}) is archived but not settled on-chain: its ${batch.receipts} call(s) get no record, so a re-send bills them once, in a new batch`);
  }
  for (const batch of report.chainBatches) lines.push(`  fetched batch ${batch.batchId} (${batch.chain}) by its on-chain CID into ${batch.path}`);
  for (const batch of report.unrebuilt) {
    lines.push(`  NOT REBUILT batch ${batch.batchId} (${batch.chain}, CID ${batch.dataCid}, block ${batch.block}): ${batch.reason}; pass --ipfs <url> where it is pinned`);
  }
  for (const problem of [...report.problems, ...problems]) lines.push(`  PROBLEM: ${problem}`);
  return lines;
}

function describeRestore(report: RestoreReport, dryRun: boolean): string[] {
  const verb = dryRun ? "would restore" : "restored";
  const lines = [
    `${dryRun ? "dry run: " : ""}backup ${report.name} into ${report.archiveDir}`,
    `  ${verb} ${report.restored.length}, already there ${report.unchanged.length}, conflicts ${report.conflicts.length}, refused ${report.refused.length}`,
  ];
  for (const problem of report.problems) lines.push(`  PROBLEM: ${problem}`);
  for (const refused of report.refused) {
    lines.push(`  REFUSED batch ${refused.batchId} (${refused.chain}): not written`);
    for (const problem of refused.problems) lines.push(`    - ${problem}`);
  }
  for (const conflict of report.conflicts) {
    const which =
      conflict.settledCid === null
        ? "neither was settled on-chain at backup time"
        : conflict.settledCid === conflict.existingCid
          ? "the EXISTING file is the one settled on-chain"
          : conflict.settledCid === conflict.backupCid
            ? "the backup's file is the one settled on-chain"
            : "neither is the file settled on-chain";
    if (conflict.replaced) {
      lines.push(`  REPLACED ${conflict.path} (CID ${conflict.existingCid} -> ${conflict.backupCid}; ${which}); the old file is kept as ${conflict.keptAs}`);
    } else {
      lines.push(`  CONFLICT ${conflict.path}: it differs from the backup (existing CID ${conflict.existingCid}, backup CID ${conflict.backupCid}; ${which}). Left as is: rerun with --overwrite to replace it (the old file is kept beside it)`);
    }
  }
  return lines;
}

export function register(program: Command): void {
  // `backup` takes options and has subcommands with the same option names: each command reads only the options
  // after its own name (commander's positional options, enabled down the chain; harmless for commands without
  // options of their own, such as the program and `litellm`).
  program.enablePositionalOptions();
  const litellm =
    program.commands.find((command) => command.name() === "litellm") ??
    program.command("litellm").description("the LiteLLM proxy side: its config, backups of the billing data");
  litellm.enablePositionalOptions();

  const group = withTarget(
    litellm
      .command("backup")
      .enablePositionalOptions()
      .description("back up every batch file, receipt and on-chain reference to a compressed archive with a manifest (verify, restore, list below)"),
  )
    .option("--config <file>", "relayer configuration: archive.dir, chains (to read each batch's settlement) and redis (the settler's ledger)")
    .option("--deployments <dir>", "deployments directory for chains without a router: (default deploy/deployments)")
    .option("--json", "print a JSON summary")
    .action(run(async (flags: CommonFlags) => backup(flags)));

  withTarget(group.command("list"))
    .description("list the backups at the target, oldest first")
    .option("--json", "print JSON")
    .action(run(async (flags: CommonFlags) => list(flags)));

  withTarget(group.command("verify"))
    .description("recompute every hash, Merkle root and CID of a backup and check them against the chain")
    .option("--name <name>", "which backup (default: the latest)")
    .option("--config <file>", "relayer configuration: the chains to check against")
    .option("--deployments <dir>", "deployments directory for chains without a router: (default deploy/deployments)")
    .option("--offline", "check hashes, roots and CIDs against the backup's own references only (no chain, no Redis)")
    .option("--skip-redis", "do not compare Redis's dedupe records with the backup's receipts")
    .option("--verbose", "list every batch, not only the failing ones")
    .option("--json", "print the full report as JSON")
    .action(run(async (flags: VerifyFlags) => verify(flags)));

  withTarget(group.command("restore"))
    .description("rebuild the relayer's archive directory from a backup, and (with --config) ingest's dedupe records in Redis; a differing file is never replaced silently")
    .option("--name <name>", "which backup (default: the latest)")
    .option("--config <file>", "relayer configuration: restore into its archive.dir, and the dedupe records into its Redis")
    .option("--ipfs <url>", "IPFS gateway (or Kubo RPC with --ipfs-api kubo) to fetch settled batches missing from the archive (default: reconciler.ipfs)")
    .option("--ipfs-api <api>", "gateway (GET /ipfs/<cid>) or kubo (POST /api/v0/cat)")
    .option("--archive-dir <dir>", "restore into this directory instead")
    .option("--overwrite", "replace files that differ from the backup (each old file is kept as <file>.replaced-<time>)")
    .option("--dry-run", "say what would be written; write nothing")
    .option("--json", "print the report as JSON")
    .action(run(async (flags: RestoreFlags) => restore(flags)));
}
