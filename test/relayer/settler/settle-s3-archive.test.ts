/**
 * A fleet's shared archive, end to end: host A's batcher seals receipts and writes the batch file to a bucket of a
 * real S3-compatible server (s3rver); host B's settler, with its own S3 client and no access to A's disk, reads
 * the file from the bucket and settles the batch on a `hardhat node` (real Redis for the ledger). The chain ends up
 * with exactly the priced receipts, and the CID it records is the one of the object in the bucket.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { deriveBatchId } from "../../../relayer/batcher/batch-file.js";
import { contentId } from "../../../relayer/batcher/content-id.js";
import { S3Archive } from "../../../relayer/batcher/s3-archive.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { pipeline, sealNow, settleAll } from "../../helpers/pipeline.js";
import { expectedCharges, receipt } from "../../helpers/receipts.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { S3_CREDENTIALS, startS3, type TestS3 } from "../../helpers/s3.js";

const BUCKET = "agentgpt-fleet";

describe("relayer: batcher and settler on two hosts sharing an S3 archive", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let s3: TestS3;
  let nowhere: string;

  before(async function () {
    [node, s3] = await Promise.all([startHardhatNode(), startS3([BUCKET])]);
    redis = testRedis();
    suite = await deployChainSuite(node.url);
    prefix = uniquePrefix();
    nowhere = await mkdtemp(join(tmpdir(), "agentgpt-unused-"));
  });
  after(async function () {
    await dropPrefix(redis, prefix);
    redis?.disconnect();
    await node?.stop();
    await s3?.close();
    await rm(nowhere, { recursive: true, force: true });
  });

  it("host A archives to the bucket, host B settles from it: exact on-chain totals, the bucket's object is the CID on-chain", async function () {
    const archiveOf = () => new S3Archive({ bucket: BUCKET, prefix: "prod/", endpoint: s3.endpoint, credentials: S3_CREDENTIALS });
    const [archiveA, archiveB] = [archiveOf(), archiveOf()];
    // each host's folder archive would be its own empty folder: only the bucket is shared
    const hostA = pipeline({ suite, rpcUrls: [node.url], redis, prefix, archiveDir: join(nowhere, "a"), archive: archiveA, maxReceipts: 20 });
    const hostB = pipeline({ suite, rpcUrls: [node.url], redis, prefix, archiveDir: join(nowhere, "b"), archive: archiveB });
    try {
      const [a, b, c] = suite.payers;
      const receipts: Receipt[] = [];
      for (let i = 0; i < 30; i++) {
        const [provider, model] = [["openai", "gpt-4-turbo"], ["anthropic", "claude-3-opus"], ["groq", "mixtral-8x22b"]][i % 3]!;
        receipts.push(receipt([a!, b!, c!][i % 3]!.address, provider!, model!, 100 + i * 37));
      }
      const before = new Map<string, bigint>();
      for (const payer of suite.payers) before.set(payer.address.toLowerCase(), await suite.router.balanceOf(payer.address));

      // host A: seal and archive (its settler only records the batches in the shared ledger; it never runs)
      await hostA.batcher.take(receipts);
      await sealNow(hostA);
      const sealed = await archiveA.list("local");
      expect(sealed.length).to.equal(2); // 20 + 10
      // host B: settles from the bucket
      await settleAll(hostB);
      await hostB.settler.lease.release();

      const finals = (await hostB.store.finalIds()).sort();
      expect(finals).to.deep.equal([...sealed].sort());
      const expected = expectedCharges(receipts);
      for (const [payer, amount] of expected.byPayer) {
        expect(before.get(payer)! - (await suite.router.balanceOf(payer)), payer).to.equal(amount);
      }
      for (const batchId of finals) {
        const record = (await hostB.store.get(batchId))!;
        expect(record.outcome!.rejected).to.deep.equal([]);
        expect(record.path).to.equal(`s3://${BUCKET}/prod/local/${batchId}.json`); // where it is, for people
        const bytes = (await archiveB.readBytes("local", batchId))!;
        expect(record.outcome!.dataCid).to.equal(await contentId(bytes));
        const file = (await archiveB.read("local", batchId))!;
        expect(deriveBatchId(suite.chainId, suite.routerAddress, file.callsFrom, file.receiptsRoot)).to.equal(batchId);
        expect((await suite.router.batchInfo(batchId)).receiptsRoot).to.equal(file.receiptsRoot);
      }
      expect((await hostB.store.stats()).receipts_settled).to.equal(30);
    } finally {
      archiveA.close();
      archiveB.close();
    }
  });
});
