/**
 * The relayer as a fleet: several `agentgpt relayer start --stages ...` processes on one Redis and one `hardhat
 * node`, each with its own stages. Every case ends as the single-process e2e tests do: the chain charged each payer
 * exactly what its calls cost, once.
 * - stages split over two processes (ingest + batcher | settler): the settler finds the batcher's batches through
 *   the ledger in Redis and the shared archive folder;
 * - two processes both running batcher and settler: one of each holds the chain's lease, and when that process is
 *   SIGKILLed the standby takes over within the lease's takeover time and settles the rest, every receipt once.
 */
import { expect } from "chai";

import { startHardhatNode, type HardhatNode } from "../helpers/hardhat-node.js";
import { startRelayerEnvironment, type RelayerEnvironment } from "../helpers/relayer-environment.js";
import { postSpend, type RelayerProcess } from "../helpers/relayer-process.js";
import { chargesByPayer, spendLog, type SpendLog } from "../helpers/spend-logs.js";

/** lease_ttl in the test config (writeRelayerConfig): 1.5 s; a standby takes over within lease_ttl * 4/3. */
const TAKEOVER_MS = 2000;

describe("e2e: the relayer as a fleet of processes with different stages", function () {
  this.timeout(240_000);
  let node: HardhatNode;
  let env: RelayerEnvironment;
  let initial: bigint[];

  before(async function () {
    node = await startHardhatNode();
  });
  after(async function () {
    await node?.stop();
  });
  beforeEach(async function () {
    env = await startRelayerEnvironment({ node, label: "fleet", payers: 3, config: { maxReceipts: 20 } });
    initial = await env.balances();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") env?.printLogs(5000);
    await env?.close();
  });

  async function start(stages: string): Promise<RelayerProcess> {
    const p = await env.spawn({ stages });
    expect(p.logs()).to.include('"msg":"relayer started"');
    return p;
  }

  function calls(count: number, runId: string): SpendLog[] {
    return Array.from({ length: count }, (_, i) => spendLog(i % env.suite.payers.length, i % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 50 + ((i * 7919) % 4000), runId));
  }

  async function send(logs: readonly SpendLog[], perBody: number) {
    for (let i = 0; i < logs.length; i += perBody) {
      const response = await postSpend(env.setup.url, logs.slice(i, i + perBody).map((log) => log.entry));
      expect(response.status, JSON.stringify(response.body)).to.equal(200);
    }
  }

  async function expectExactTotals(logs: readonly SpendLog[]) {
    const expected = chargesByPayer(logs);
    let total = 0n;
    for (const [i, payer] of env.suite.payers.entries()) {
      const charged = initial[i]! - (await env.suite.router.balanceOf(payer.address));
      expect(charged, `payer ${i}`).to.equal(expected.get(i) ?? 0n);
      total += charged;
    }
    expect(await env.suite.router.totalEscrow()).to.equal(total);
    const stats = await env.store.stats();
    expect(stats.receipts_settled).to.equal(logs.length); // each call settled once, never twice
  }

  it("ingest + batcher in one process, the settler in another: batches cross through Redis and the archive", async function () {
    const settler = await start("settler");
    const front = await start("ingest,batcher");
    const logs = calls(60, env.prefix);
    await send(logs, 15);
    await env.settled(logs.length);
    await expectExactTotals(logs);
    expect(front.logs()).to.include("batch handed to the settlers' ledger");
    expect(front.logs()).to.not.include('"msg":"batch signed"');
    expect(settler.logs()).to.include('"msg":"batch signed"');
    expect(settler.logs()).to.not.include('"msg":"batch sealed and archived"');
  });

  it("two processes running batcher and settler: one holds each lease; SIGKILL it and the standby settles the rest, every receipt once", async function () {
    const first = await start("batcher,settler"); // takes the leases first
    await new Promise((r) => setTimeout(r, 300));
    const second = await start("ingest,batcher,settler");
    const before = calls(40, `${env.prefix}-a`);
    await send(before, 10);
    await env.settled(before.length);
    expect(first.logs()).to.include('"msg":"batch signed"');
    expect(second.logs()).to.not.include('"msg":"batch signed"'); // standby while the first holds the settler lease
    expect(second.logs()).to.not.include('"msg":"batch sealed and archived"');

    first.child.kill("SIGKILL");
    await first.exited;
    const killedAt = Date.now();
    const after = calls(40, `${env.prefix}-b`);
    await send(after, 10);
    await env.settled(before.length + after.length);
    const sealed = second.logs().split("\n").find((line) => line.includes('"msg":"batch sealed and archived"'));
    expect(sealed, "the standby seals after the takeover").to.not.equal(undefined);
    expect(JSON.parse(sealed!).time - killedAt).to.be.at.most(TAKEOVER_MS + 1500); // + one max_wait and a tick
    await expectExactTotals([...before, ...after]);
  });
});
