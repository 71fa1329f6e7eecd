/**
 * Where backups are kept. One interface, several strategies:
 *
 *   --strategy local   --location DIR      a directory (a mounted volume, a synced folder): tested here
 *   --strategy s3      --location REGION   an S3 bucket (or any S3-compatible store), storage class STANDARD
 *   --strategy glacier --location REGION   the same, storage class GLACIER (the seed's cold storage)
 *
 * The archive is always built in a local file first (so its size and SHA-256 are known), then handed to the target.
 * A target never overwrites a backup: names carry the time, and `put` refuses a name that exists.
 */
import type { Readable } from "node:stream";

export interface BackupTarget {
  /** For people: "local /var/backups/agentgpt", "s3://bucket/prefix/ (eu-central-1, GLACIER)". */
  readonly label: string;
  /** Stores the finished archive `localFile` as `name`, and its SHA-256 beside it; returns where it is. */
  put(name: string, localFile: string, sha256: string): Promise<string>;
  /** The archive's bytes, streamed. */
  open(name: string): Promise<Readable>;
  /** The SHA-256 recorded beside the archive (`<name>.sha256`), or null when there is none. */
  recordedSha256(name: string): Promise<string | null>;
  /** Backup names held, oldest first. */
  list(): Promise<string[]>;
}

export const STRATEGIES = ["local", "s3", "glacier"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** `sha256sum` format: `<hex>  <name>\n`. */
export function sha256Line(sha256: string, name: string): string {
  return `${sha256}  ${name}\n`;
}

export function parseSha256Line(text: string): string | null {
  const match = /^([0-9a-f]{64})\s/.exec(text.trim() + "\n");
  return match === null ? null : match[1]!;
}
