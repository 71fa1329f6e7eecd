/**
 * The archive a configuration names (`archive:`): the local folder `archive.dir`, resolved against the config
 * file's folder (the default, ./.archive), or the bucket `archive.s3`.
 */
import { dirname, isAbsolute, resolve } from "node:path";

import type { RelayerConfig } from "../config/index.js";
import type { Logger } from "pino";

import type { Archive } from "./archive.js";
import { LocalArchive } from "./local-archive.js";
import { S3Archive, type S3ArchiveOptions } from "./s3-archive.js";

export interface OpenArchiveOptions {
  /** explicit S3 credentials (tests); default: the AWS default credential chain */
  readonly credentials?: S3ArchiveOptions["credentials"];
}

export function openArchive(config: Pick<RelayerConfig, "archive" | "files">, options: OpenArchiveOptions = {}): Archive {
  const s3 = config.archive.s3;
  if (s3 !== undefined) {
    return new S3Archive({
      bucket: s3.bucket,
      prefix: s3.prefix,
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: s3.forcePathStyle,
      maxAttempts: s3.maxAttempts,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
  }
  return new LocalArchive(archiveDir(config));
}

/**
 * openArchive, then check(): the folder is writable, or the bucket exists, the credentials work and writing is
 * allowed; else an ArchiveError that says what to fix (the archive is closed). Lines for `relayer check`.
 */
export async function checkArchive(archive: Archive): Promise<string[]> {
  try {
    await archive.check();
  } catch (error) {
    archive.close();
    throw error;
  }
  if (!(archive instanceof S3Archive)) return [`archive: ${archive.location} (local folder)`];
  return [
    `archive: ${archive.location} (S3${archive.conditionalWrites === true ? ", conditional writes honoured" : ""})`,
    ...(archive.conditionalWrites === false ? [`warning: ${CONDITIONAL_WARNING}`] : []),
  ];
}

const CONDITIONAL_WARNING =
  "the archive's store ignores If-None-Match on PutObject: a batch file is still never replaced by a later write, but two batchers " +
  "writing the same batch at the same instant are not caught (run one batcher per chain, or use a store with conditional writes)";

/** `relayer check`: opens the configured archive, checks it, closes it. */
export async function checkConfiguredArchive(config: Pick<RelayerConfig, "archive" | "files">, options: OpenArchiveOptions = {}): Promise<string[]> {
  const archive = openArchive(config, options);
  const lines = await checkArchive(archive);
  archive.close();
  return lines;
}

/** openArchive + checkArchive, for a stage that starts: the warning, if any, goes to the log. */
export async function openCheckedArchive(config: Pick<RelayerConfig, "archive" | "files">, logger?: Logger, options: OpenArchiveOptions = {}): Promise<Archive> {
  const archive = openArchive(config, options);
  const lines = await checkArchive(archive);
  for (const line of lines) if (line.startsWith("warning: ")) logger?.warn({ archive: archive.location }, line.slice("warning: ".length));
  return archive;
}

/**
 * An archive named on a command line: `s3://bucket/prefix` (region, endpoint and credentials from the AWS
 * environment: AWS_REGION, AWS_ENDPOINT_URL_S3, the default credential chain), else a local folder.
 */
export function archiveAt(location: string): Archive {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (match === null) return new LocalArchive(location);
  return new S3Archive({ bucket: match[1]!, prefix: match[2]! });
}

/** The local archive folder `archive.dir`, absolute (./.archive next to the config file when unset). */
export function archiveDir(config: Pick<RelayerConfig, "archive" | "files">): string {
  const dir = config.archive.dir ?? "./.archive";
  return isAbsolute(dir) ? dir : resolve(dirname(config.files[0] ?? "."), dir);
}
