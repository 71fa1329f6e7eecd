/**
 * Backups in an S3 bucket (AWS, or any S3-compatible store such as MinIO or Ceph) through the AWS SDK v3: the
 * default credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE with the shared
 * files, web identity, the ECS/EC2 instance role), the SDK's retries, and multipart uploads (@aws-sdk/lib-storage:
 * parts of 16 MiB, so backups above 5 GiB go up too, and a failed part is retried on its own).
 *
 * Tested against s3rver (test/relayer/backup/s3-target.test.ts): put, list, verify and restore round trip, a
 * multipart upload, the errors for a missing bucket and refused credentials.
 *
 * Settings (flags first, then the environment):
 *   --location REGION            e.g. eu-central-1 (the seed's `--strategy glacier --location eu-central-1`)
 *   --bucket / AGENTGPT_BACKUP_BUCKET            the bucket (required)
 *   --prefix / AGENTGPT_BACKUP_PREFIX            key prefix (default "agentgpt-backups/")
 *   AGENTGPT_S3_ENDPOINT                          an S3-compatible endpoint (path-style requests), e.g. http://127.0.0.1:9000
 * Objects go up with storage class STANDARD (`s3`) or GLACIER (`glacier`); the `.sha256` sidecar is always STANDARD
 * so it stays readable. A GLACIER archive must be restored (`aws s3api restore-object`) before verify or restore
 * can read it; the error says so. No credential is ever part of a message.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";

import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";

import { describeS3Error, loadS3Sdk } from "../../batcher/s3-archive.js";
import { BackupError } from "../errors.js";
import { BACKUP_NAME_PATTERN, compareBackupNames } from "../manifest.js";
import { parseSha256Line, sha256Line, type BackupTarget } from "./target.js";

/** multipart part size: 16 MiB (S3 allows 10,000 parts: backups up to about 156 GiB) */
const PART_SIZE = 16 * 1024 * 1024;

export interface S3TargetOptions {
  readonly region: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly storageClass: "STANDARD" | "GLACIER" | "DEEP_ARCHIVE" | "GLACIER_IR";
  /** S3-compatible endpoint (path-style); default AWS */
  readonly endpoint?: string | undefined;
  /** explicit credentials (tests); default: the SDK's default credential chain */
  readonly credentials?: S3ClientConfig["credentials"];
  /** multipart part size in bytes (default 16 MiB, at least 5 MiB) */
  readonly partSize?: number | undefined;
}

type Sdk = Awaited<ReturnType<typeof loadS3Sdk>>;

export class S3Target implements BackupTarget {
  private connected: Promise<{ sdk: Sdk; client: S3Client }> | null = null;
  private client: S3Client | null = null;

  constructor(private readonly options: S3TargetOptions) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new BackupError("INVALID_INPUT", `--bucket ${options.bucket}: not an S3 bucket name (3-63 lowercase letters, digits, "." and "-")`);
    }
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(options.region) && options.endpoint === undefined) {
      throw new BackupError("INVALID_INPUT", `--location ${options.region}: give an AWS region, e.g. eu-central-1`);
    }
  }

  /** The SDK is loaded on first use (every `agentgpt` command would pay for it otherwise). */
  private connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.connected ??= loadS3Sdk().then((sdk) => {
      const options = this.options;
      this.client = new sdk.S3Client({
        region: options.region,
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint, forcePathStyle: true }),
        maxAttempts: 5,
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      });
      return { sdk, client: this.client };
    });
    return this.connected;
  }

  get label(): string {
    return `s3://${this.options.bucket}/${this.options.prefix} (${this.options.region}, ${this.options.storageClass})`;
  }

  async put(name: string, localFile: string, sha256: string): Promise<string> {
    const key = this.key(name);
    if (await this.exists(key)) throw new BackupError("TARGET_FAILED", `s3://${this.options.bucket}/${key} exists already: backups are never replaced`);
    const { sdk, client } = await this.connect();
    const { Upload } = await import("@aws-sdk/lib-storage");
    const upload = new Upload({
      client,
      params: { Bucket: this.options.bucket, Key: key, Body: createReadStream(localFile), StorageClass: this.options.storageClass, ContentType: "application/gzip" },
      partSize: Math.max(this.options.partSize ?? PART_SIZE, 5 * 1024 * 1024),
      queueSize: 4,
      leavePartsOnError: false, // a failed multipart upload is aborted: no orphaned parts billed
    });
    try {
      await upload.done();
    } catch (error) {
      throw this.failure(`upload s3://${this.options.bucket}/${key}`, error);
    }
    try {
      await client.send(
        new sdk.PutObjectCommand({ Bucket: this.options.bucket, Key: `${key}.sha256`, Body: sha256Line(sha256, name), ContentType: "text/plain", StorageClass: "STANDARD" }),
      );
    } catch (error) {
      throw this.failure(`write s3://${this.options.bucket}/${key}.sha256`, error);
    }
    return `s3://${this.options.bucket}/${key}`;
  }

  async open(name: string): Promise<Readable> {
    const key = this.key(name);
    const { sdk, client } = await this.connect();
    try {
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return response.Body as Readable;
    } catch (error) {
      const code = (error as { name?: string }).name;
      if (code === "InvalidObjectState") {
        throw new BackupError(
          "TARGET_FAILED",
          `s3://${this.options.bucket}/${key} is in cold storage (${this.options.storageClass}): restore it first, e.g. ` +
            `\`aws s3api restore-object --bucket ${this.options.bucket} --key ${key} --restore-request Days=7\`, wait for it, then run again`,
        );
      }
      if (code === "NoSuchKey") throw new BackupError("NO_BACKUP", `no backup ${name} under s3://${this.options.bucket}/${this.options.prefix}`);
      throw this.failure(`read s3://${this.options.bucket}/${key}`, error);
    }
  }

  async recordedSha256(name: string): Promise<string | null> {
    const key = `${this.key(name)}.sha256`;
    const { sdk, client } = await this.connect();
    try {
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return parseSha256Line(await response.Body!.transformToString());
    } catch (error) {
      if ((error as { name?: string }).name === "NoSuchKey") return null;
      throw this.failure(`read s3://${this.options.bucket}/${key}`, error);
    }
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    const { sdk, client } = await this.connect();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.options.prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }),
        );
      } catch (error) {
        throw this.failure(`list s3://${this.options.bucket}/${this.options.prefix}`, error);
      }
      for (const object of page.Contents ?? []) {
        const name = (object.Key ?? "").slice(this.options.prefix.length);
        if (BACKUP_NAME_PATTERN.test(name)) names.push(name);
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return names.sort(compareBackupNames);
  }

  /** Releases the client's sockets. */
  close(): void {
    this.client?.destroy();
  }

  private key(name: string): string {
    return `${this.options.prefix}${name}`;
  }

  private async exists(key: string): Promise<boolean> {
    const { sdk, client } = await this.connect();
    try {
      await client.send(new sdk.HeadObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return true;
    } catch (error) {
      const name = (error as { name?: string }).name;
      // HEAD has no body: a missing key and a missing bucket are both 404 NotFound; list() below tells them apart
      if (name === "NotFound" || name === "NoSuchKey") {
        await this.list();
        return false;
      }
      throw this.failure(`check s3://${this.options.bucket}/${key}`, error);
    }
  }

  private failure(what: string, error: unknown): BackupError {
    const described = describeS3Error(error, {
      what,
      bucket: this.options.bucket,
      where: this.options.endpoint !== undefined ? `at ${this.options.endpoint}` : `in AWS ${this.options.region}`,
      setting: "--bucket / --location / AGENTGPT_S3_ENDPOINT",
    });
    return new BackupError(described.code === "CREDENTIALS" ? "CREDENTIALS" : "TARGET_FAILED", described.message, { cause: error });
  }
}
