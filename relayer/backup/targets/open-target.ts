/**
 * `--strategy` and `--location` (plus the S3 settings) -> a BackupTarget. Every bad value is refused here with the
 * flag's name and the fix.
 */
import { BackupError } from "../errors.js";
import { LocalTarget } from "./local-target.js";
import { S3Target } from "./s3-target.js";
import { STRATEGIES, type BackupTarget, type Strategy } from "./target.js";

export interface TargetOptions {
  readonly strategy: string;
  readonly location: string;
  readonly bucket?: string | undefined;
  readonly prefix?: string | undefined;
}

export function openTarget(options: TargetOptions, env: Readonly<Record<string, string | undefined>> = process.env): BackupTarget {
  if (!(STRATEGIES as readonly string[]).includes(options.strategy)) {
    throw new BackupError("INVALID_INPUT", `--strategy ${options.strategy}: one of ${STRATEGIES.join(", ")} (local: a directory; s3, glacier: an S3 bucket)`);
  }
  const strategy = options.strategy as Strategy;
  if (options.location.trim() === "") throw new BackupError("INVALID_INPUT", "--location: give a directory (local) or a region (s3, glacier)");
  if (strategy === "local") return new LocalTarget(options.location);

  const bucket = options.bucket ?? env.AGENTGPT_BACKUP_BUCKET;
  if (bucket === undefined || bucket === "") {
    throw new BackupError("INVALID_INPUT", `--strategy ${strategy}: name the bucket with --bucket <name> or AGENTGPT_BACKUP_BUCKET`);
  }
  // credentials: the AWS SDK's default chain (environment, AWS_PROFILE and the shared files, the instance role)
  let prefix = options.prefix ?? env.AGENTGPT_BACKUP_PREFIX ?? "agentgpt-backups/";
  if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
  const endpoint = env.AGENTGPT_S3_ENDPOINT;
  return new S3Target({
    region: options.location.trim(),
    bucket,
    prefix,
    storageClass: strategy === "glacier" ? "GLACIER" : "STANDARD",
    endpoint: endpoint === undefined || endpoint === "" ? undefined : endpoint,
  });
}
