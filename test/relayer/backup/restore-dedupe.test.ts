/**
 * Exactly once across a restore: LiteLLM calls ingested, settled on a `hardhat node` in two batches, backed up; one
 * batch's file is then lost from the archive (it survives on-chain and on "IPFS"). `backup restore` into a fresh
 * Redis (a new key prefix) rebuilds the dedupe records from the archive and, given an IPFS gateway, from the chain;
 * the same LiteLLM payloads sent again are duplicates: nothing settled is queued again, while the calls of a batch
 * archived but never sent are queued once. `backup verify` agrees, then fails once a record is deleted.
 */
import { createServer, type Server } from "node:http";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { buildBatch } from "../../../relayer/batcher/batch-file.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { startIngest } from "../../../relayer/ingest/index.js";
import { IngestKeys, type Receipt } from "../../../relayer/queue/index.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { postSpend, writeRelayerConfig, type RelayerSetup } from "../../helpers/relayer-process.js";
import { spendLog } from "../../helpers/spend-logs.js";
import { agentgpt, settleBatch } from "./helpers.js";

describe("backup restore keeps exactly once (dedupe records rebuilt from the archive and the chain)", function () {
  this.timeout(240_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let freshPrefix: string;
  let setup: RelayerSetup;
  let freshConfig: string;
  let freshArchive: string;
  let location: string;
  let gateway: Server;
  let gatewayUrl: string;
  const ipfs = new Map<string, Buffer>();
  const payloads: Array<Record<string, unknown>> = [];
  let lost: string;
  let pending: string;
  let unsentIds: string[];

  /** ingests `entries` with the real HTTP ingest of `configFile`; returns its answer and the receipts it queued */
  async function ingest(configFile: string, entries: unknown[]): Promise<{ body: any; receipts: Receipt[] }> {
    const config = loadRelayerConfig(configFile, { env: {} });
    const runtime = await startIngest(config, { port: 0, sweep: false, defaultMetrics: false, parseWorkers: 0, env: {} });
    try {
      const answer = await postSpend(runtime.url, entries);
      expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
      const receipts: Receipt[] = [];
      for (const { chunkId } of await runtime.queue.store.pendingChunks("local")) {
        receipts.push(...((await runtime.queue.store.readChunk(chunkId)) ?? []));
        await runtime.queue.store.ack("local", chunkId);
      }
      return { body: answer.body, receipts };
    } finally {
      await runtime.stop();
    }
  }

  before(async function () {
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 2 });
    redis = testRedis();
    prefix = uniquePrefix("rdd");
    freshPrefix = uniquePrefix("rdd-fresh");
    const payers = suite.payers.map((p) => p.address);
    setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers, chainId: suite.chainId });
    // the fresh Redis: the same relayer on a new key prefix and an empty archive directory
    freshArchive = join(setup.dir, "fresh-archive");
    freshConfig = join(setup.dir, "fresh.yaml");
    await writeFile(freshConfig, (await readFile(setup.configFile, "utf8")).replace(`prefix: ${prefix}`, `prefix: ${freshPrefix}`).replace(`dir: ${setup.archiveDir}`, `dir: ${freshArchive}`));
    location = await mkdtemp(join(tmpdir(), "agentgpt-backups-"));

    gateway = createServer((req, res) => {
      const bytes = ipfs.get((req.url ?? "").replace(/^\/ipfs\//, ""));
      res.writeHead(bytes === undefined ? 404 : 200).end(bytes);
    });
    await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
    gatewayUrl = `http://127.0.0.1:${(gateway.address() as { port: number }).port}`;

    // every call in the current usage bucket (one batch each settle)
    const bucket = Math.floor(Date.now() / 3_600_000) * 3600;
    const run = uniquePrefix("run");
    const first = Array.from({ length: 6 }, (_, i) => spendLog(i % 2, i % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 300 + i, run, { startTime: bucket + 1 + i }).entry);
    // a call id used twice: first by a failed call (kept unbillable, not in any batch), then by a billed call
    // started later, billed under "<id>#<start ms>"
    const failed: Record<string, unknown> = { ...spendLog(0, "gpt-4-turbo", 50, run, { startTime: bucket + 20 }).entry, status: "failure" };
    const reused = { ...spendLog(1, "gpt-4-turbo", 70, run, { startTime: bucket + 30 }).entry, id: failed["id"], litellm_call_id: failed["litellm_call_id"] };
    const second = Array.from({ length: 3 }, (_, i) => spendLog(i % 2, "gpt-4-turbo", 900 + i, run, { startTime: bucket + 40 + i }).entry);
    // sealed and archived, never sent (Redis lost before the settler sent it): its calls must stay billable once
    const unsent = Array.from({ length: 2 }, (_, i) => spendLog(i % 2, "gpt-4-turbo", 500 + i, run, { startTime: bucket + 50 + i }).entry);
    payloads.push(...first, failed, reused, ...second, ...unsent);

    const a = await ingest(setup.configFile, [...first, failed, reused]);
    expect(a.body).to.deep.include({ queued: 7, unbillable: 1 });
    expect(a.receipts.map((r) => r.id)).to.include(`${String(failed["id"])}#${(bucket + 30) * 1000}`);
    const kept = await settleBatch(suite, node.url, redis, prefix, setup.archiveDir, a.receipts);
    const b = await ingest(setup.configFile, second);
    expect(b.body).to.deep.include({ queued: 3 });
    const gone = await settleBatch(suite, node.url, redis, prefix, setup.archiveDir, b.receipts);
    expect(kept.batchId).to.not.equal(gone.batchId);

    // the second batch's file is only on "IPFS" (and its CID on-chain): lost from the archive before the backup
    lost = gone.batchId;
    const path = join(setup.archiveDir, "local", `${lost}.json`);
    const bytes = await readFile(path);
    expect(await contentId(bytes)).to.equal(gone.cid);
    ipfs.set(gone.cid, bytes);
    await unlink(path);

    const c = await ingest(setup.configFile, unsent);
    unsentIds = c.receipts.map((r) => r.id);
    const built = await buildBatch(c.receipts, Date.now(), callsFromOf(c.receipts[0]!.startTime, 3600), {
      chain: "local",
      chainId: suite.chainId,
      router: suite.routerAddress,
      usageBucket: 3600,
      registry: { providerId: () => 1, modelId: () => 1 },
    });
    pending = built.file.batchId;
    await new LocalArchive(setup.archiveDir).write("local", pending, built.bytes);

    const made = await agentgpt(["litellm", "backup", "--strategy", "local", "--location", location, "--config", setup.configFile]);
    expect(made.code, made.stdout + made.stderr).to.equal(0);
  });

  after(async function () {
    await node?.stop();
    gateway?.close();
    await dropPrefix(redis, prefix);
    await dropPrefix(redis, freshPrefix);
    redis.disconnect();
    await rm(setup.dir, { recursive: true, force: true });
    await rm(location, { recursive: true, force: true });
  });

  const target = () => ["--strategy", "local", "--location", location];

  it("restores the records, re-sent logs are duplicates, and verify tells a missing record", async function () {
    // without an IPFS gateway, the batch missing from the archive cannot be rebuilt: said, and exit 1
    const partial = await agentgpt(["litellm", "backup", "restore", ...target(), "--config", freshConfig]);
    expect(partial.code, partial.stdout + partial.stderr).to.equal(1);
    expect(partial.stdout).to.include("restored 2, already there 0, conflicts 0, refused 0");
    expect(partial.stdout).to.include(`batch ${pending} (local) is archived but not settled on-chain: its 2 call(s) get no record`);
    expect(partial.stdout).to.include("dedupe records: 7 billed call(s) in 2 archived batch(es); written 7, already there 0, expired 0, reused ids held 1");
    expect(partial.stdout).to.match(new RegExp(`NOT REBUILT batch ${lost} \\(local, CID \\w+, block \\d+\\): not in the archive`));

    const full = await agentgpt(["litellm", "backup", "restore", ...target(), "--config", freshConfig, "--ipfs", gatewayUrl]);
    expect(full.code, full.stdout + full.stderr).to.equal(0);
    expect(full.stdout).to.include(`fetched batch ${lost} (local) by its on-chain CID into ${join(freshArchive, "local", `${lost}.json`)}`);
    expect(full.stdout).to.include("dedupe records: 10 billed call(s) in 2 archived batch(es) and 1 fetched by CID; written 3, already there 7");

    // LiteLLM (or the backfill) sends every log again, into the restored relayer: only the calls of the batch never
    // sent are queued (billed once); every settled call is a duplicate
    const again = await ingest(freshConfig, payloads);
    expect(again.body).to.deep.include({ queued: 2, duplicates: 10, conflicts: 0, unbillable: 1 });
    expect(again.receipts.map((r) => r.id).sort()).to.deep.equal(unsentIds.sort());

    const verified = await agentgpt(["litellm", "backup", "verify", ...target(), "--config", freshConfig]);
    expect(verified.code, verified.stdout + verified.stderr).to.equal(0);
    expect(verified.stdout).to.include("Redis dedupe records: 7 of 7 receipts of the backup have one");
    expect(verified.stdout.trim().split("\n").at(-1)).to.equal("OK: all 2 batches verified, Redis's dedupe records agree");

    const first = String(payloads[0]!["id"]);
    expect(await redis.del(new IngestKeys(freshPrefix).seen(first))).to.equal(1);
    const broken = await agentgpt(["litellm", "backup", "verify", ...target(), "--config", freshConfig]);
    expect(broken.code, broken.stdout + broken.stderr).to.equal(1);
    expect(broken.stdout).to.include(`PROBLEM: 1 billed call(s) have no dedupe record, so a re-send would be billed again: ${first}`);
    expect(broken.stdout.trim().split("\n").at(-1)).to.equal("2 of 2 batches verified, Redis's dedupe records DISAGREE");
    expect(broken.stderr).to.include("Redis's dedupe records disagree with it");
    // a record the restore writes again, without touching the others
    const repaired = await agentgpt(["litellm", "backup", "restore", ...target(), "--config", freshConfig, "--ipfs", gatewayUrl]);
    expect(repaired.stdout).to.include("written 1, already there 9");
  });
});
