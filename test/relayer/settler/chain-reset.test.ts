/**
 * A chain reset under the real relayer process (`agentgpt relayer start`): the `hardhat node` it settles on is
 * restarted (a new chain: same chain id and port, new genesis, no contracts). The settler says so once, naming the
 * cause and the fix, stops sending and backs off, instead of logging an undecodable error every second; ingest's
 * /readyz answers 503 with that reason.
 */
import { rm } from "node:fs/promises";

import { expect } from "chai";
import type { Redis } from "ioredis";

import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { deployChainSuite } from "../../helpers/chain-suite.js";
import { freePort, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { postSpend, startRelayer, writeRelayerConfig, type RelayerProcess, type RelayerSetup } from "../../helpers/relayer-process.js";
import { spendLog } from "../../helpers/spend-logs.js";

async function until(what: string, probe: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("settler: chain reset under a running relayer", function () {
  this.timeout(180_000);
  let node: HardhatNode | undefined;
  let redis: Redis;
  let prefix: string;
  let setup: RelayerSetup | undefined;
  let relayer: RelayerProcess | undefined;

  before(function () {
    redis = testRedis();
  });
  after(async function () {
    if (this.currentTest?.state === "failed" && relayer) process.stderr.write(`--- relayer logs ---\n${relayer.logs().slice(-6000)}\n`);
    await relayer?.stop();
    await node?.stop();
    if (prefix !== undefined) await dropPrefix(redis, prefix);
    redis?.disconnect();
    if (setup) await rm(setup.dir, { recursive: true, force: true });
  });

  it("logs the cause and the fix once, backs off, and /readyz answers 503 with that reason", async function () {
    const port = await freePort();
    node = await startHardhatNode({ port });
    const suite = await deployChainSuite(node.url, { payers: 1 });
    prefix = uniquePrefix("reset");
    setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: [suite.payers[0]!.address], chainId: suite.chainId });
    relayer = await startRelayer(setup, suite.relayerKey);
    const store = new SettlementStore(redis, prefix, "local");
    const readyz = async () => {
      const response = await fetch(`${setup!.url}/readyz`);
      return { status: response.status, body: (await response.json()) as { status?: string; reason?: string } };
    };

    // settles as usual on the chain it started on
    const first = [spendLog(0, "gpt-4-turbo", 400, prefix), spendLog(0, "gpt-4-turbo", 500, prefix)];
    expect((await postSpend(setup.url, first.map((log) => log.entry))).status).to.equal(200);
    await until("the first calls settled", async () => ((await store.stats()).receipts_settled ?? 0) === 2);
    const ready = await readyz();
    expect(ready.status).to.equal(200);
    expect(ready.body.status).to.equal("ready");

    // the node restarts: same port and chain id, a new chain without the contracts; a batch is left to settle
    await node.stop();
    node = await startHardhatNode({ port });
    const resetAt = relayer.logs().length;
    expect((await postSpend(setup.url, [spendLog(0, "gpt-4-turbo", 600, prefix).entry])).status).to.equal(200);

    await until("/readyz reports the reset", async () => (await readyz()).status === 503);
    const answer = await readyz();
    expect(answer.body.reason).to.match(
      new RegExp(
        `^settler:local chain: chain local (was reset \\(its genesis block changed from 0x[0-9a-f]{64} to 0x[0-9a-f]{64}: a restarted local node\\?\\)|: no contract at the router address ${suite.routerAddress})`,
      ),
    );
    expect(answer.body.reason).to.include("redeploy the contracts (npm run deploy), point chains.local.router (or the deployment file) at the new router, and restart the relayer");

    // a few seconds more: the cause is logged once, and no pass fails every second with an undecodable error
    await new Promise((r) => setTimeout(r, 6000));
    const lines = relayer
      .logs()
      .slice(resetAt)
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const stopped = lines.filter((line) => String(line["msg"]).startsWith("settlement stopped on this chain, nothing is sent: "));
    expect(stopped.length, JSON.stringify(stopped)).to.equal(1);
    expect(stopped[0]!["level"]).to.equal(50);
    expect(stopped[0]!["cause"]).to.equal(answer.body.reason!.replace(/^settler:local chain: /, ""));
    const settlerErrors = lines.filter((line) => line["stage"] === "settler" && line["level"] === 50);
    expect(settlerErrors.length, JSON.stringify(settlerErrors.map((line) => line["msg"]))).to.equal(1);
    expect(lines.some((line) => line["msg"] === "settler pass failed; retrying")).to.equal(false);
    expect((await readyz()).status).to.equal(503);
  });
});
