/**
 * Finding a batch file: the archive, else IPFS by the on-chain CID (a gateway or a Kubo node's RPC, real HTTP on
 * 127.0.0.1), always checked against that CID and the batch's identity.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { buildBatch, type BuiltBatch } from "../../../relayer/batcher/batch-file.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import { DisputeError, IpfsClient, loadBatchFile, proveRow } from "../../../relayer/disputes/index.js";
import { receipt } from "../../helpers/receipts.js";

const ROUTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async function serve(handler: (req: IncomingMessage) => { status: number; body?: Uint8Array }): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const { status, body } = handler(req);
    res.writeHead(status).end(body === undefined ? undefined : Buffer.from(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

async function rejects(promise: Promise<unknown>, message: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(DisputeError);
    expect((error as Error).message).to.contain(message);
    return;
  }
  expect.fail(`resolved, expected a DisputeError with "${message}"`);
}

describe("disputes: batch files from the archive or IPFS", function () {
  let dir: string;
  let batch: BuiltBatch;
  let identity: { batchId: string; dataCid: string; chainId: number; router: string };

  before(async function () {
    const bucket = 3600;
    const callsFrom = Math.floor(Date.now() / 1000 / bucket) * bucket;
    const startTime = callsFrom * 1000 + 1000;
    const receipts = [
      receipt(PAYER, "openai", "gpt-4-turbo", 1000, { chain: "local", startTime }),
      receipt(PAYER, "groq", "mixtral-8x22b", 500, { chain: "local", startTime }),
    ];
    batch = await buildBatch(receipts, Date.now(), callsFrom, {
      chain: "local",
      chainId: 31337,
      router: ROUTER,
      usageBucket: bucket,
      registry: { providerId: (name) => (name === "openai" ? 1 : 3), modelId: (name) => (name === "gpt-4-turbo" ? 1 : 3) },
    });
    identity = { batchId: batch.file.batchId, dataCid: batch.cid, chainId: 31337, router: ROUTER };
  });
  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-bsrc-"));
  });
  afterEach(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads the archived file (any chain folder) and proves its rows against the rows root", async function () {
    const archive = new LocalArchive(dir);
    await archive.write("local", batch.file.batchId, batch.bytes);
    const loaded = await loadBatchFile({ archive }, identity);
    expect(loaded).to.include({ from: "archive", location: archive.locationOf("local", batch.file.batchId) });
    const { buildRowsTree } = await import("../../../relayer/batcher/rows-tree.js");
    const root = buildRowsTree(batch.charges).root;
    const proven = proveRow(loaded.file, { batchId: identity.batchId, rowsRoot: root, rejected: new Map() }, 1);
    expect(proven.charge).to.deep.equal(batch.charges[1]);
    expect(() => proveRow(loaded.file, { batchId: identity.batchId, rowsRoot: `0x${"11".repeat(32)}`, rejected: new Map() }, 1))
      .to.throw(DisputeError, "the rows of the batch file rebuild root");
    expect(() => proveRow(loaded.file, { batchId: identity.batchId, rowsRoot: root, rejected: new Map() }, 7)).to.throw(DisputeError, "--row 7: batch");
  });

  it("falls back to a Kubo node when the archived file was altered, and to a gateway when it is missing", async function () {
    const archive = new LocalArchive(dir);
    const altered = new TextEncoder().encode(new TextDecoder().decode(batch.bytes).replace('"tokens":"1000"', '"tokens":"1001"'));
    await archive.write("local", batch.file.batchId, altered);
    await rejects(loadBatchFile({ archive }, identity), "is not the file settled on-chain (its CID is not");

    const kubo = await serve((req) => (req.method === "POST" && req.url === `/api/v0/cat?arg=${batch.cid}` ? { status: 200, body: batch.bytes } : { status: 405 }));
    const gateway = await serve((req) => (req.url === `/ipfs/${batch.cid}` ? { status: 200, body: batch.bytes } : { status: 404 }));
    try {
      const viaKubo = await loadBatchFile({ archive, ipfs: new IpfsClient({ url: kubo.url, api: "kubo" }) }, identity);
      expect(viaKubo).to.include({ from: "ipfs", location: `ipfs://${batch.cid}` });
      expect(viaKubo.file.batchId).to.equal(batch.file.batchId);
      await rm(archive.locationOf("local", batch.file.batchId));
      const viaGateway = await loadBatchFile({ archive, ipfs: new IpfsClient({ url: `${gateway.url}/` }) }, identity);
      expect(viaGateway.from).to.equal("ipfs");
      expect(gateway.requests).to.deep.equal([`GET /ipfs/${batch.cid}`]);
      await rejects(loadBatchFile({ archive, ipfs: new IpfsClient({ url: gateway.url }) }, { ...identity, dataCid: "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" }), "answered HTTP 404");
      await rejects(loadBatchFile({ archive, ipfs: new IpfsClient({ url: "http://127.0.0.1:1" }) }, identity), "unreachable");
    } finally {
      await kubo.close();
      await gateway.close();
    }
  });

  it("refuses a file of another batch, chain or router, or no batch file at all, and says where to look when there is none", async function () {
    await rejects(loadBatchFile({ archive: new LocalArchive(join(dir, "nope")) }, identity), "does not exist: check --archive");
    const archive = new LocalArchive(dir);
    await rejects(loadBatchFile({ archive }, identity), "is not in the archive");
    await rejects(loadBatchFile({ archive: new LocalArchive(dir), archiveChain: "local" }, identity), "pass --archive <dir|s3://bucket/prefix> (the relayer's archive.dir or archive.s3) or --ipfs <url>");
    await archive.write("local", batch.file.batchId, batch.bytes);
    await rejects(loadBatchFile({ archive }, { ...identity, chainId: 42161 }), "belongs to chain 31337, not batch");
    await rejects(loadBatchFile({ archive }, { ...identity, router: PAYER }), `belongs to router ${ROUTER}`);
    const notABatch = new TextEncoder().encode("{}");
    await writeFile(archive.locationOf("local", batch.file.batchId), notABatch);
    await rejects(loadBatchFile({ archive, archiveChain: "local" }, { ...identity, dataCid: await contentId(notABatch) }), "is not a batch file (agentgpt-batch-v2)");
  });
});
