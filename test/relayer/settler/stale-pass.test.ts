/**
 * A settler pass that stalls past its lease and resumes after the lease was taken again (found by the fleet chaos
 * run, `npm run chaos -- --fleet`, on a loaded machine): settler A reads a mined batch, stalls (here: in its archive
 * read before finalizing); its lease lapses, settler B takes it, finalizes the batch and dies; A takes the lease
 * again (a new holding, a new token) and its stale pass resumes. Its writes must be refused (FENCED): before the fix
 * they went through with the new token, finalizing the batch a second time and counting its receipts twice.
 * Real `hardhat node`, real Redis.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { FencedError } from "../../../relayer/settler/lease.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, sealNow } from "../../helpers/pipeline.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

describe("settler: a pass that outlived its lease", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
    suite = await deployChainSuite(node.url);
    prefix = uniquePrefix("stale-pass");
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-archive-"));
  });
  after(async function () {
    await dropPrefix(redis, prefix).catch(() => undefined);
    redis?.disconnect();
    await node?.stop();
    await rm(archiveDir, { recursive: true, force: true });
  });

  it("writes nothing once the lease was taken again meanwhile, even by its own process: the batch is final once, counted once", async function () {
    const a = pipeline({ suite, rpcUrls: [node.url], redis, prefix, archiveDir });
    const b = pipeline({ suite, rpcUrls: [node.url], redis, prefix, archiveDir });
    const models = [["openai", "gpt-4-turbo"], ["groq", "mixtral-8x22b"]] as const;
    const receipts = Array.from({ length: 12 }, (_, i) => receipt(suite.payers[i % 3]!.address, models[i % 2]![0], models[i % 2]![1], 100 + i));
    await a.batcher.take(receipts);
    await sealNow(a);
    const [batchId] = (await a.store.active()).map((r) => r.batchId);

    // settler A holds the lease and carries the batch up to "mined"
    expect(await a.settler.lease.acquire()).to.equal(true);
    (a.settler as unknown as { running: boolean }).running = true;
    for (let i = 0; i < 50 && (await a.store.get(batchId!))!.state !== "mined"; i++) await a.settler.pass();
    expect((await a.store.get(batchId!))!.state).to.equal("mined");
    const firstToken = a.settler.lease.token;

    // A's next pass reads the mined batch and stalls in the archive read before finalizing; meanwhile:
    const read = a.archive.read.bind(a.archive);
    let stalled = false;
    a.archive.read = async (...args: Parameters<typeof read>) => {
      if (!stalled) {
        stalled = true;
        await redis.del(a.store.key("lease")); // A's lease lapses
        expect(await b.settler.lease.acquire()).to.equal(true); // B takes over, finalizes the batch...
        (b.settler as unknown as { running: boolean }).running = true;
        await b.settler.pass();
        expect((await b.store.get(batchId!))!.state).to.equal("final");
        await redis.del(b.store.key("lease")); // ... and dies
        expect(await a.settler.lease.acquire()).to.equal(true); // A takes the lease again: a new holding
        expect(a.settler.lease.token).to.be.greaterThan(firstToken + 1);
      }
      return read(...args);
    };
    let error: unknown = null;
    await a.settler.pass().catch((e: unknown) => (error = e));
    expect(stalled, "the pass reached the stall").to.equal(true);
    expect(error).to.be.instanceOf(FencedError);

    const stats = await a.store.stats();
    expect(stats.batches_final).to.equal(1);
    expect(stats.receipts_settled).to.equal(receipts.length);
    expect(await a.store.finalIds()).to.deep.equal([batchId]);

    // A's next pass, under the token it holds now, finds nothing left to do
    await a.settler.pass();
    expect((await a.store.stats()).receipts_settled).to.equal(receipts.length);
  });
});
