/**
 * Backups in an S3 bucket (AWS, or any S3-compatible store such as MinIO or Ceph), over plain HTTPS with SigV4
 * signatures (./sigv4.ts): no AWS SDK, nothing downloaded at run time.
 *
 * UNTESTED against a real S3 endpoint in this repository (no network here): the request signing is checked against
 * AWS's published example; the requests themselves follow the S3 REST API (PutObject, GetObject, HeadObject,
 * ListObjectsV2). Try it on a scratch bucket before relying on it.
 *
 * Settings (flags first, then the environment):
 *   --location REGION            e.g. eu-central-1 (the seed's `--strategy glacier --location eu-central-1`)
 *   --bucket / AGENTGPT_BACKUP_BUCKET            the bucket (required)
 *   --prefix / AGENTGPT_BACKUP_PREFIX            key prefix (default "agentgpt-backups/")
 *   AGENTGPT_S3_ENDPOINT                          an S3-compatible endpoint (path-style requests), e.g. http://127.0.0.1:9000
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional): the credentials; never printed
 * Objects go up with storage class STANDARD (`s3`) or GLACIER (`glacier`); the `.sha256` sidecar is always STANDARD
 * so it stays readable. A GLACIER archive must be restored (`aws s3api restore-object`) before verify or restore
 * can read it; the error says so. Single PUT: archives up to 5 GiB.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";

import { BackupError } from "../errors.js";
import { BACKUP_NAME_PATTERN, compareBackupNames } from "../manifest.js";
import { EMPTY_SHA256, encodeKeyPath, signRequest, type AwsCredentials } from "./sigv4.js";
import { parseSha256Line, sha256Line, type BackupTarget } from "./target.js";

const MAX_SINGLE_PUT = 5 * 1024 ** 3;

export interface S3TargetOptions {
  readonly region: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly storageClass: "STANDARD" | "GLACIER" | "DEEP_ARCHIVE" | "GLACIER_IR";
  readonly credentials: AwsCredentials;
  /** S3-compatible endpoint (path-style); default AWS virtual-hosted https://<bucket>.s3.<region>.amazonaws.com */
  readonly endpoint?: string | undefined;
}

interface Response {
  status: number;
  body: IncomingMessage;
}

export class S3Target implements BackupTarget {
  private readonly base: URL;
  private readonly pathStyle: boolean;

  constructor(private readonly options: S3TargetOptions) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new BackupError("INVALID_INPUT", `--bucket ${options.bucket}: not an S3 bucket name (3-63 lowercase letters, digits, "." and "-")`);
    }
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(options.region) && options.endpoint === undefined) {
      throw new BackupError("INVALID_INPUT", `--location ${options.region}: give an AWS region, e.g. eu-central-1`);
    }
    this.pathStyle = options.endpoint !== undefined;
    this.base = new URL(options.endpoint ?? `https://${options.bucket}.s3.${options.region}.amazonaws.com`);
  }

  get label(): string {
    return `s3://${this.options.bucket}/${this.options.prefix} (${this.options.region}, ${this.options.storageClass})`;
  }

  async put(name: string, localFile: string, sha256: string): Promise<string> {
    const key = this.key(name);
    const { size } = await stat(localFile);
    if (size > MAX_SINGLE_PUT) throw new BackupError("TARGET_FAILED", `the archive is ${size} bytes: above 5 GiB, which needs a multipart upload (not implemented)`);
    const head = await this.send("HEAD", key);
    head.body.resume();
    if (head.status === 200) throw new BackupError("TARGET_FAILED", `s3://${this.options.bucket}/${key} exists already: backups are never replaced`);
    const put = await this.send("PUT", key, {
      body: createReadStream(localFile),
      length: size,
      payloadHash: sha256,
      headers: { "x-amz-storage-class": this.options.storageClass, "content-type": "application/gzip" },
    });
    await this.expectOk(put, `PUT ${key}`);
    const sidecar = Buffer.from(sha256Line(sha256, name));
    const side = await this.send("PUT", `${key}.sha256`, {
      body: Readable.from([sidecar]),
      length: sidecar.length,
      payloadHash: createHash("sha256").update(sidecar).digest("hex"),
      headers: { "content-type": "text/plain" },
    });
    await this.expectOk(side, `PUT ${key}.sha256`);
    return `s3://${this.options.bucket}/${key}`;
  }

  async open(name: string): Promise<Readable> {
    const key = this.key(name);
    const response = await this.send("GET", key);
    if (response.status === 200) return response.body;
    const text = await readAll(response.body);
    const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
    if (code === "InvalidObjectState") {
      throw new BackupError(
        "TARGET_FAILED",
        `s3://${this.options.bucket}/${key} is in cold storage (${this.options.storageClass}): restore it first, e.g. ` +
          `\`aws s3api restore-object --bucket ${this.options.bucket} --key ${key} --restore-request Days=7\`, wait for it, then run again`,
      );
    }
    if (response.status === 404) throw new BackupError("NO_BACKUP", `no backup ${name} under s3://${this.options.bucket}/${this.options.prefix}`);
    throw this.failure(`GET ${key}`, response.status, code);
  }

  async recordedSha256(name: string): Promise<string | null> {
    const response = await this.send("GET", `${this.key(name)}.sha256`);
    const text = await readAll(response.body);
    return response.status === 200 ? parseSha256Line(text) : null;
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { "list-type": "2", prefix: this.options.prefix };
      if (token !== undefined) query["continuation-token"] = token;
      const response = await this.send("GET", "", { query });
      const text = await readAll(response.body);
      if (response.status !== 200) throw this.failure("ListObjectsV2", response.status, /<Code>([^<]+)<\/Code>/.exec(text)?.[1]);
      for (const match of text.matchAll(/<Key>([^<]+)<\/Key>/g)) {
        const name = unescapeXml(match[1]!).slice(this.options.prefix.length);
        if (BACKUP_NAME_PATTERN.test(name)) names.push(name);
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(text) ? unescapeXml(/<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(text)?.[1] ?? "") || undefined : undefined;
    } while (token !== undefined);
    return names.sort(compareBackupNames);
  }

  private key(name: string): string {
    return `${this.options.prefix}${name}`;
  }

  private async send(
    method: string,
    key: string,
    options: { body?: Readable; length?: number; payloadHash?: string; headers?: Record<string, string>; query?: Record<string, string> } = {},
  ): Promise<Response> {
    const basePath = this.base.pathname.replace(/\/$/, "");
    const objectPath = key === "" ? "/" : encodeKeyPath(key);
    const path = this.pathStyle ? `${basePath}/${this.options.bucket}${key === "" ? "" : objectPath}` : `${basePath}${objectPath}`;
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (options.length !== undefined) headers["content-length"] = String(options.length);
    const signed = signRequest({
      method,
      host: this.base.host,
      path: path === "" ? "/" : path,
      query: options.query ?? {},
      headers,
      payloadHash: options.payloadHash ?? EMPTY_SHA256,
      region: this.options.region,
      credentials: this.options.credentials,
      date: new Date(),
    });
    const query = new URLSearchParams(options.query ?? {}).toString();
    const url = new URL(`${this.base.protocol}//${this.base.host}${path === "" ? "/" : path}${query === "" ? "" : `?${query}`}`);
    const send = url.protocol === "http:" ? httpRequest : httpsRequest;
    return new Promise<Response>((resolve, reject) => {
      const req = send(url, { method, headers: signed.headers, timeout: 60_000 }, (res) => resolve({ status: res.statusCode ?? 0, body: res }));
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (error) =>
        reject(new BackupError("TARGET_FAILED", `${method} ${this.base.host}: ${error.message} (check --location, the endpoint and the network)`, { cause: error })),
      );
      if (options.body === undefined) req.end();
      else options.body.pipe(req);
    });
  }

  private async expectOk(response: Response, what: string): Promise<void> {
    const text = await readAll(response.body);
    if (response.status >= 200 && response.status < 300) return;
    throw this.failure(what, response.status, /<Code>([^<]+)<\/Code>/.exec(text)?.[1]);
  }

  private failure(what: string, status: number, code: string | undefined): BackupError {
    const hint =
      code === "AccessDenied" || code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch"
        ? ": check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
        : code === "NoSuchBucket"
          ? `: create the bucket ${this.options.bucket} in ${this.options.region} or fix --bucket`
          : "";
    return new BackupError("TARGET_FAILED", `${what}: S3 answered HTTP ${status}${code === undefined ? "" : ` ${code}`}${hint}`);
  }
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}
