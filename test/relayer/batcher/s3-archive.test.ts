/**
 * The batch archive on a real S3-compatible server (s3rver on 127.0.0.1): round trip, two processes' archives (each
 * its own client) sharing one bucket, the write rule (a file is never replaced), `relayer check` with the default
 * credential chain, and clear errors for a missing bucket or refused credentials, which never carry a credential.
 * The local folder keeps the same write rule.
 */
import { spawn } from "node:child_process";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";

import { ArchiveConflictError, ArchiveError, type Archive } from "../../../relayer/batcher/archive.js";
import { buildBatch, type BuiltBatch } from "../../../relayer/batcher/batch-file.js";
import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { openArchive } from "../../../relayer/batcher/open-archive.js";
import { S3Archive } from "../../../relayer/batcher/s3-archive.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { receipt } from "../../helpers/receipts.js";
import { S3_CREDENTIALS, startS3, type TestS3 } from "../../helpers/s3.js";

const REPO = join(import.meta.dirname, "..", "..", "..");
const ROUTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BUCKET = "agentgpt-archive";

/** A batch of one receipt; `again(sealedAt)` seals the same receipt into other bytes under the same batch id. */
async function batchOf(tokens: number): Promise<BuiltBatch & { again(sealedAt: number): Promise<BuiltBatch> }> {
  const bucket = 3600;
  const callsFrom = Math.floor(Date.now() / 1000 / bucket) * bucket;
  const receipts = [receipt(PAYER, "openai", "gpt-4-turbo", tokens, { chain: "local", startTime: callsFrom * 1000 + 1000 })];
  const context = { chain: "local", chainId: 31337, router: ROUTER, usageBucket: bucket, registry: { providerId: () => 1, modelId: () => 1 } };
  const again = (sealedAt: number) => buildBatch(receipts, sealedAt, callsFrom, context);
  return { ...(await again(1_700_000_000_000)), again };
}

async function caught(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  expect.fail("resolved, expected an error");
}

function agentgpt(args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, "bin", "agentgpt.mjs"), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}


/**
 * A pass-through HTTP proxy in front of s3rver that adds what s3rver lacks: `If-None-Match: *` on PutObject (412
 * when the key exists), checked and written under one lock as S3 does. Requests and bodies are forwarded unchanged.
 */
async function conditionalProxy(target: string): Promise<{ endpoint: string; refused: () => number; close(): Promise<void> }> {
  const upstream = new URL(target);
  let lock: Promise<void> = Promise.resolve();
  let refused = 0;
  const forward = (req: IncomingMessage, method: string, body: boolean): Promise<{ status: number; headers: IncomingMessage["headers"]; data: Buffer }> =>
    new Promise((resolve, reject) => {
      const out = request({ host: upstream.hostname, port: upstream.port, method, path: req.url, headers: body ? req.headers : {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, data: Buffer.concat(chunks) }));
      });
      out.on("error", reject);
      if (body) req.pipe(out);
      else out.end();
    });
  const server: Server = createServer((req, res) => {
    const conditional = req.method === "PUT" && req.headers["if-none-match"] === "*";
    const run = async () => {
      if (conditional && (await forward(req, "HEAD", false)).status === 200) {
        refused++;
        req.resume();
        res.writeHead(412, { "content-type": "application/xml" }).end("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>");
        return;
      }
      const answer = await forward(req, req.method!, true);
      res.writeHead(answer.status, answer.headers).end(answer.data);
    };
    const done = conditional ? (lock = lock.then(run, run)) : run();
    done.catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused: () => refused,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("batcher: the archive on S3 (s3rver)", function () {
  this.timeout(60_000);
  let s3: TestS3;
  let dir: string;
  const open: Archive[] = [];
  const s3Archive = (prefix: string, credentials = S3_CREDENTIALS, bucket = BUCKET): S3Archive => {
    const archive = new S3Archive({ bucket, prefix, endpoint: s3.endpoint, credentials, maxAttempts: 2 });
    open.push(archive);
    return archive;
  };

  before(async function () {
    s3 = await startS3([BUCKET]);
  });
  after(async function () {
    await s3.close();
  });
  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-s3a-"));
  });
  afterEach(async function () {
    for (const archive of open.splice(0)) archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("round trip: a batch file written is read back byte for byte, listed, and named by its s3:// URL", async function () {
    const archive = s3Archive("rt/");
    const batch = await batchOf(1200);
    const id = batch.file.batchId;
    expect(await archive.readBytes("local", id)).to.equal(null);
    const location = await archive.write("local", id, batch.bytes);
    expect(location).to.equal(`s3://${BUCKET}/rt/local/${id}.json`);
    expect(archive.locationOf("local", id)).to.equal(location);
    expect(archive.location).to.equal(`s3://${BUCKET}/rt/`);
    expect(Buffer.compare(Buffer.from((await archive.readBytes("local", id))!), Buffer.from(batch.bytes))).to.equal(0);
    expect((await archive.read("local", id))!.batchId).to.equal(id);
    expect(await archive.list("local")).to.deep.equal([id]);
    expect(await archive.list("polygon")).to.deep.equal([]);
    expect(await archive.chains()).to.deep.equal(["local"]);
    // the object is really in the bucket, under the prefix (s3rver keeps it as a file)
    const stored = await readFile(join(s3.dir, BUCKET, "rt", "local", `${id}.json._S3rver_object`)).catch(() => null);
    if (stored !== null) expect(Buffer.compare(stored, Buffer.from(batch.bytes))).to.equal(0);
  });

  it("two processes' archives (separate clients) share the bucket: one writes, the other reads; a different file under the same id is refused", async function () {
    const hostA = s3Archive("fleet/");
    const hostB = s3Archive("fleet/");
    const batch = await batchOf(700);
    const id = batch.file.batchId;
    await hostA.write("local", id, batch.bytes);
    expect(await hostB.list("local")).to.deep.equal([id]);
    expect((await hostB.read("local", id))!.receiptsRoot).to.equal(batch.file.receiptsRoot);

    // the same bytes again (a retried write, a batcher resuming): accepted, nothing changes
    expect(await hostB.write("local", id, batch.bytes)).to.equal(hostA.locationOf("local", id));
    // other bytes under the same batch id (a second batcher sealing the same receipts): refused, the first kept
    const other = await batch.again(1_700_000_000_001);
    expect(other.file.batchId).to.equal(id);
    expect(Buffer.compare(Buffer.from(other.bytes), Buffer.from(batch.bytes))).to.not.equal(0);
    const error = await caught(hostB.write("local", id, other.bytes));
    expect(error).to.be.instanceOf(ArchiveConflictError);
    expect(error.message).to.include(`s3://${BUCKET}/fleet/local/${id}.json exists with different bytes`);
    expect(Buffer.compare(Buffer.from((await hostA.readBytes("local", id))!), Buffer.from(batch.bytes))).to.equal(0);
  });

  it("on a store that honours If-None-Match (s3rver behind a conditional proxy): check() sees it, and of two writers racing with different bytes exactly one wins", async function () {
    const proxy = await conditionalProxy(s3.endpoint);
    try {
      const via = (prefix: string) => {
        const archive = new S3Archive({ bucket: BUCKET, prefix, endpoint: proxy.endpoint, credentials: S3_CREDENTIALS, maxAttempts: 1 });
        open.push(archive);
        return archive;
      };
      const probe = via("cond-check/");
      await probe.check();
      expect(probe.conditionalWrites).to.equal(true);
      expect(proxy.refused()).to.equal(1); // the probe's second write

      const batch = await batchOf(99);
      const id = batch.file.batchId;
      const other = await batch.again(1_700_000_000_001);
      const [first, second] = [via("race/"), via("race/")];
      const results = await Promise.allSettled([first.write("local", id, batch.bytes), second.write("local", id, other.bytes)]);
      const won = results.findIndex((r) => r.status === "fulfilled");
      expect(results.filter((r) => r.status === "fulfilled").length).to.equal(1);
      const lost = results[1 - won] as PromiseRejectedResult;
      expect(lost.reason).to.be.instanceOf(ArchiveConflictError);
      const stored = Buffer.from((await first.readBytes("local", id))!);
      expect(Buffer.compare(stored, Buffer.from(won === 0 ? batch.bytes : other.bytes))).to.equal(0);
      // the loser is refused by its pre-read or, when both pre-reads missed (the usual case here), by the 412 and the
      // read-back that follows it; either way nothing was replaced
      expect(proxy.refused()).to.be.within(1, 2);
    } finally {
      await proxy.close();
    }
  });

  it("setAside moves a file out of the way (backup restore --overwrite) and keeps it readable", async function () {
    const archive = s3Archive("aside/");
    const batch = await batchOf(10);
    const id = batch.file.batchId;
    await archive.write("local", id, batch.bytes);
    const kept = await archive.setAside("local", id, "replaced-20260101T000000Z");
    expect(kept).to.equal(`s3://${BUCKET}/aside/local/${id}.json.replaced-20260101T000000Z`);
    expect(await archive.readBytes("local", id)).to.equal(null);
    expect(await archive.list("local")).to.deep.equal([]);
  });

  it("check(): passes on the bucket and tells whether the store honours conditional writes (s3rver does not)", async function () {
    const archive = s3Archive("check/");
    await archive.check();
    expect(archive.conditionalWrites).to.equal(false);
    expect(await archive.list("local")).to.deep.equal([]); // the probe object is gone
  });

  it("a bucket that does not exist, or refused credentials: a clear ArchiveError, without the credentials", async function () {
    const missing = s3Archive("x/", S3_CREDENTIALS, "no-such-bucket");
    const noBucket = await caught(missing.check());
    expect(noBucket).to.be.instanceOf(ArchiveError);
    expect((noBucket as ArchiveError).code).to.equal("NO_BUCKET");
    expect(noBucket.message).to.equal(
      `list: the bucket "no-such-bucket" does not exist at ${s3.endpoint}: create it, or fix archive.s3 (bucket, region, endpoint)`,
    );
    expect((await caught(missing.readBytes("local", `0x${"1".repeat(64)}`))).message).to.include('the bucket "no-such-bucket" does not exist');

    const secret = { accessKeyId: "AKIAWRONGKEY0000TEST", secretAccessKey: "very-secret-value-0123456789" };
    const refused = s3Archive("x/", secret);
    const badKey = await caught(refused.check());
    expect((badKey as ArchiveError).code).to.equal("CREDENTIALS");
    expect(badKey.message).to.include("S3 refused the credentials (InvalidAccessKeyId)");
    expect(badKey.message).to.include("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE");
    for (const text of [badKey.message, badKey.stack ?? "", JSON.stringify(badKey)]) {
      expect(text).to.not.include(secret.secretAccessKey);
      expect(text).to.not.include(secret.accessKeyId);
    }
  });

  it("config: archive.s3 is validated with the field and the fix, and opens an S3 archive", async function () {
    const write = async (yaml: string): Promise<string> => {
      const file = join(dir, "relayer.yaml");
      await writeFile(file, `include: [${join(REPO, "config", "litellm-router.yaml")}]\nchains: { arbitrum: {} }\n${yaml}`);
      return file;
    };
    const config = loadRelayerConfig(await write(`archive: { s3: { bucket: ${BUCKET}, prefix: prod, endpoint: "${s3.endpoint}" } }\n`), { env: {} });
    expect(config.archive).to.deep.equal({ s3: { bucket: BUCKET, prefix: "prod/", region: undefined, endpoint: s3.endpoint, forcePathStyle: undefined, maxAttempts: 5 } });
    const archive = openArchive(config, { credentials: S3_CREDENTIALS });
    open.push(archive);
    expect(archive.location).to.equal(`s3://${BUCKET}/prod/`);
    expect(loadRelayerConfig(await write(""), { env: {} }).archive).to.deep.equal({ dir: "./.archive" });

    const refused = (yaml: string): string => {
      try {
        loadRelayerConfig(join(dir, "relayer.yaml"), { env: {} });
      } catch (error) {
        return (error as Error).message;
      }
      return `accepted: ${yaml}`;
    };
    await write("archive: { dir: ./a, s3: { bucket: b-1 } }\n");
    expect(refused("both")).to.include("give either dir: (a local folder) or s3: (a bucket), not both");
    await write("archive: { s3: { bucket: Bad_Bucket } }\n");
    expect(refused("bad bucket")).to.match(/archive\.s3\.bucket.*an S3 bucket name/s);
    await write("archive: { s3: { bucket: b-1, endpoint: ftp://x } }\n");
    expect(refused("bad endpoint")).to.match(/archive\.s3\.endpoint.*an http\(s\) URL/s);
    await write("archive: { s3: { bucket: b-1, secret_access_key: x } }\n");
    expect(refused("credentials in the file")).to.match(/secret_access_key/);
  });

  it("relayer check: the S3 archive through the default credential chain (environment); a wrong key is refused clearly, and never printed", async function () {
    this.timeout(120_000);
    const configFile = join(dir, "relayer.yaml");
    const write = (bucket: string) =>
      writeFile(
        configFile,
        `include: [${join(REPO, "config", "litellm-router.yaml")}]\nchains: { arbitrum: {} }\narchive: { s3: { bucket: ${bucket}, prefix: check/, endpoint: "${s3.endpoint}" } }\n`,
      );
    const env = { AGENTGPT_INGEST_TOKENS: "check-token-0123456789abcdef", AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_PROFILE: "", AWS_REGION: "" };
    await write(BUCKET);
    const ok = await agentgpt(["relayer", "check", "--config", configFile], env);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.include(`  archive: s3://${BUCKET}/check/ (S3)\n`);
    expect(ok.stdout).to.include("  warning: the archive's store ignores If-None-Match on PutObject");

    const wrong = await agentgpt(["relayer", "check", "--config", configFile], { ...env, AWS_ACCESS_KEY_ID: "AKIAWRONGKEY0000TEST", AWS_SECRET_ACCESS_KEY: "very-secret-value-0123456789" });
    expect(wrong.code).to.equal(2);
    expect(wrong.stderr).to.include("S3 refused the credentials (InvalidAccessKeyId)");
    expect(wrong.stderr + wrong.stdout).to.not.include("very-secret-value");
    expect(wrong.stderr + wrong.stdout).to.not.include("AKIAWRONGKEY0000TEST");
  });

  it("the local folder keeps the same rule: the same bytes again are accepted, different bytes refused and the first file kept", async function () {
    const archive = new LocalArchive(join(dir, "archive"));
    await archive.check(); // nothing created: the folder's parent is writable
    const batch = await batchOf(42);
    const id = batch.file.batchId;
    const path = await archive.write("local", id, batch.bytes);
    expect(path).to.equal(join(dir, "archive", "local", `${id}.json`));
    expect(await archive.write("local", id, batch.bytes)).to.equal(path);
    const other = await batch.again(1_700_000_000_001);
    expect(await caught(archive.write("local", id, other.bytes))).to.be.instanceOf(ArchiveConflictError);
    expect(Buffer.compare(await readFile(path), Buffer.from(batch.bytes))).to.equal(0);
    expect(await archive.list("local")).to.deep.equal([id]);
    expect(await archive.chains()).to.deep.equal(["local"]);
  });
});
