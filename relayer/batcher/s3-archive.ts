/**
 * The archive in an S3 bucket (AWS, or an S3-compatible store: MinIO, Ceph RGW...), through the AWS SDK v3: the
 * default credential chain (environment, shared config/credentials files and AWS_PROFILE, web identity, the ECS or
 * EC2 instance role), the SDK's retries (standard mode, `max_attempts`), its integrity checksums. Keys:
 * `<prefix><chain>/<batchId>.json`.
 *
 * Durability: S3 answers a PutObject only once the object is stored (and reads after a write see it, S3 being
 * strongly consistent since 2020), so a batch file is durable when write() returns.
 *
 * The write rule of ./archive.ts (a file is never replaced) is kept in two steps:
 * 1. read the key first: the same bytes there -> done; different bytes -> ArchiveConflictError;
 * 2. PutObject with `If-None-Match: *` (a conditional write: AWS S3 since August 2024, MinIO, Ceph RGW): if another
 *    writer got there in between, S3 answers 412 and the key is read again and compared as in 1.
 * A store that ignores If-None-Match (s3rver, old MinIO/Ceph) still gets step 1, which catches every write after
 * the first one has returned (a retried write, a restarted batcher); only two writers racing inside one PutObject
 * could replace each other's bytes there. check() finds out which kind of store it is and says so.
 *
 * No credential is ever part of a message: errors name the bucket, the key, the S3 error code and the fix.
 */
import { randomBytes } from "node:crypto";

import type { ListObjectsV2CommandOutput, S3Client, S3ClientConfig } from "@aws-sdk/client-s3";

import { ArchiveConflictError, ArchiveError, BATCH_ID_PATTERN, CHAIN_NAME_PATTERN, parseBatchBytes, sameBytes, type Archive } from "./archive.js";
import type { BatchFile } from "./batch-file.js";

export interface S3ArchiveOptions {
  readonly bucket: string;
  /** key prefix, "" or ending in "/" (normalised here) */
  readonly prefix: string;
  /** the bucket's region; default the SDK's (AWS_REGION, the shared config), "us-east-1" with an endpoint */
  readonly region?: string | undefined;
  /** an S3-compatible endpoint, e.g. http://127.0.0.1:9000 */
  readonly endpoint?: string | undefined;
  /** path-style requests (http://host/bucket/key): what most S3-compatible stores need; default true with an endpoint */
  readonly forcePathStyle?: boolean | undefined;
  /** attempts per request, the first included (the SDK's standard retry mode); default 5 */
  readonly maxAttempts?: number | undefined;
  /** explicit credentials (tests); default: the SDK's default credential chain */
  readonly credentials?: S3ClientConfig["credentials"];
}

type Sdk = typeof import("@aws-sdk/client-s3");
let sdkLoading: Promise<Sdk> | null = null;
/** The SDK, loaded on first use: every `agentgpt` command would otherwise pay for loading it. */
export function loadS3Sdk(): Promise<Sdk> {
  return (sdkLoading ??= import("@aws-sdk/client-s3"));
}

export class S3Archive implements Archive {
  readonly bucket: string;
  readonly prefix: string;
  private connected: Promise<{ sdk: Sdk; client: S3Client }> | null = null;
  private client: S3Client | null = null;
  /** false once check() saw the store ignore If-None-Match; null before */
  conditionalWrites: boolean | null = null;

  constructor(private readonly options: S3ArchiveOptions) {
    this.bucket = options.bucket;
    this.prefix = normalisePrefix(options.prefix);
  }

  private connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.connected ??= loadS3Sdk().then((sdk) => {
      const options = this.options;
      const region = options.region ?? (options.endpoint !== undefined ? "us-east-1" : undefined);
      this.client = new sdk.S3Client({
        ...(region === undefined ? {} : { region }),
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        maxAttempts: options.maxAttempts ?? 5,
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      });
      return { sdk, client: this.client };
    });
    return this.connected;
  }

  get location(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  locationOf(chain: string, batchId: string): string {
    return `s3://${this.bucket}/${this.keyOf(chain, batchId)}`;
  }

  async write(chain: string, batchId: string, bytes: Uint8Array): Promise<string> {
    const key = this.keyOf(chain, batchId);
    const location = `s3://${this.bucket}/${key}`;
    const existing = await this.getBytes(key);
    if (existing !== null) {
      if (sameBytes(existing, bytes)) return location;
      throw new ArchiveConflictError(location);
    }
    if (await this.putIfAbsent(key, bytes, "application/json")) return location;
    // another writer stored this key between our read and our write
    const there = await this.getBytes(key);
    if (there !== null && sameBytes(there, bytes)) return location;
    throw new ArchiveConflictError(location);
  }

  async readBytes(chain: string, batchId: string): Promise<Uint8Array | null> {
    return this.getBytes(this.keyOf(chain, batchId));
  }

  async read(chain: string, batchId: string): Promise<BatchFile | null> {
    const bytes = await this.readBytes(chain, batchId);
    return bytes === null ? null : parseBatchBytes(bytes);
  }

  async list(chain: string): Promise<string[]> {
    const ids: string[] = [];
    const folder = `${this.prefix}${chain}/`;
    for await (const page of this.pages(folder)) {
      for (const object of page.Contents ?? []) {
        const name = (object.Key ?? "").slice(folder.length);
        if (name.endsWith(".json") && BATCH_ID_PATTERN.test(name.slice(0, -5))) ids.push(name.slice(0, -5));
      }
    }
    return ids;
  }

  async chains(): Promise<string[]> {
    const chains: string[] = [];
    for await (const page of this.pages(this.prefix, "/")) {
      for (const common of page.CommonPrefixes ?? []) {
        const name = (common.Prefix ?? "").slice(this.prefix.length).replace(/\/$/, "");
        if (CHAIN_NAME_PATTERN.test(name)) chains.push(name);
      }
    }
    return chains.sort();
  }

  async setAside(chain: string, batchId: string, suffix: string): Promise<string> {
    const key = this.keyOf(chain, batchId);
    const kept = `${key}.${suffix}`;
    const { sdk, client } = await this.connect();
    await this.call(`copy ${key}`, () =>
      client.send(new sdk.CopyObjectCommand({ Bucket: this.bucket, Key: kept, CopySource: `${this.bucket}/${key.split("/").map(encodeURIComponent).join("/")}` })),
    );
    await this.call(`delete ${key}`, () => client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
    return `s3://${this.bucket}/${kept}`;
  }

  /**
   * Lists the prefix (the bucket exists, the credentials work, reading is allowed), then writes a probe object twice
   * with If-None-Match: * (writing is allowed; does the store honour conditional writes?) and deletes it.
   */
  async check(): Promise<void> {
    const { sdk, client } = await this.connect();
    await this.call("list", () => client.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 })));
    const probe = `${this.prefix}.agentgpt-check-${randomBytes(6).toString("hex")}`;
    const body = new TextEncoder().encode("agentgpt archive check\n");
    await this.putIfAbsent(probe, body, "text/plain");
    this.conditionalWrites = !(await this.putIfAbsent(probe, body, "text/plain"));
    await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: probe })).catch(() => undefined);
  }

  close(): void {
    this.client?.destroy();
  }

  private keyOf(chain: string, batchId: string): string {
    return `${this.prefix}${chain}/${batchId}.json`;
  }

  /** PutObject with If-None-Match: *; false when the store refused it because the key exists. */
  private async putIfAbsent(key: string, bytes: Uint8Array, contentType: string): Promise<boolean> {
    try {
      const { sdk, client } = await this.connect();
      await client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType, IfNoneMatch: "*" }));
      return true;
    } catch (error) {
      const status = statusOf(error);
      // 412 PreconditionFailed: the key exists; 409 ConditionalRequestConflict: a write to it is in progress
      if (status === 412 || status === 409) return false;
      throw this.failure(`write s3://${this.bucket}/${key}`, error);
    }
  }

  private async getBytes(key: string): Promise<Uint8Array | null> {
    try {
      const { sdk, client } = await this.connect();
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await response.Body!.transformToByteArray();
    } catch (error) {
      if (codeOf(error) === "NoSuchKey") return null;
      throw this.failure(`read s3://${this.bucket}/${key}`, error);
    }
  }

  private async *pages(prefix: string, delimiter?: string): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    const { sdk, client } = await this.connect();
    do {
      const page = await this.call(`list s3://${this.bucket}/${prefix}`, () =>
        client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      yield page;
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async call<T>(what: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw this.failure(what, error);
    }
  }

  /** An SDK error -> an ArchiveError naming the bucket and the fix; never the credentials nor the server's text. */
  failure(what: string, error: unknown): ArchiveError {
    return describeS3Error(error, { what, bucket: this.bucket, where: this.where(), setting: "archive.s3" });
  }

  private where(): string {
    return this.options.endpoint !== undefined ? `at ${this.options.endpoint}` : `in AWS${this.options.region === undefined ? "" : ` ${this.options.region}`}`;
  }
}

export interface S3ErrorContext {
  readonly what: string;
  readonly bucket: string;
  /** "at http://127.0.0.1:9000" | "in AWS eu-central-1" */
  readonly where: string;
  /** the setting to fix, e.g. "archive.s3" or "--bucket" */
  readonly setting: string;
}

const CREDENTIAL_CODES = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId"]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "TimeoutError", "RequestTimeout"]);

/** Maps an SDK error to an ArchiveError; shared with the backup target. Messages carry codes, never secrets. */
export function describeS3Error(error: unknown, context: S3ErrorContext): ArchiveError {
  if (error instanceof ArchiveError) return error;
  const code = codeOf(error);
  const status = statusOf(error);
  const { what, bucket, where, setting } = context;
  const chain = "the default credential chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/credentials, or the instance role";
  if (code === "CredentialsProviderError") {
    return new ArchiveError("CREDENTIALS", `${what}: no AWS credentials found through ${chain}: provide one of them`, { cause: error });
  }
  if (code === "NoSuchBucket" || (status === 404 && code === "NotFound")) {
    return new ArchiveError("NO_BUCKET", `${what}: the bucket "${bucket}" does not exist ${where}: create it, or fix ${setting} (bucket, region, endpoint)`, { cause: error });
  }
  if (CREDENTIAL_CODES.has(code)) {
    return new ArchiveError("CREDENTIALS", `${what}: S3 refused the credentials (${code}) ${where}: check ${chain}`, { cause: error });
  }
  if (code === "AccessDenied" || status === 403) {
    return new ArchiveError(
      "ACCESS_DENIED",
      `${what}: access denied (${code || "HTTP 403"}) on the bucket "${bucket}" ${where}: the credentials need s3:ListBucket, s3:GetObject and s3:PutObject on it`,
      { cause: error },
    );
  }
  if (code === "PermanentRedirect" || code === "AuthorizationHeaderMalformed" || code === "IllegalLocationConstraintException") {
    return new ArchiveError("FAILED", `${what}: the bucket "${bucket}" is in another region (${code}): fix ${setting} region`, { cause: error });
  }
  if (NETWORK_CODES.has(code) || (error instanceof Error && /Region is missing/i.test(error.message))) {
    const fix = /Region is missing/i.test((error as Error).message) ? `set ${setting} region (or AWS_REGION)` : `check ${setting} endpoint and the network`;
    return new ArchiveError("UNREACHABLE", `${what}: S3 ${where} cannot be reached (${code || "no region"}): ${fix}`, { cause: error });
  }
  return new ArchiveError("FAILED", `${what}: S3 ${where} answered ${status === undefined ? "" : `HTTP ${status} `}${code || "an error"}`, { cause: error });
}

function codeOf(error: unknown): string {
  if (typeof error !== "object" || error === null) return "";
  const e = error as { name?: unknown; code?: unknown; Code?: unknown };
  if (typeof e.code === "string" && /^E[A-Z]+$/.test(e.code)) return e.code;
  if (typeof e.Code === "string") return e.Code;
  return typeof e.name === "string" && e.name !== "Error" ? e.name : typeof e.code === "string" ? e.code : "";
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, "");
  return trimmed === "" || trimmed.endsWith("/") ? trimmed : `${trimmed}/`;
}
