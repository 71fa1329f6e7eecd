/**
 * End to end: scheduled relayer key rotation through the RelayerKeyRotator, under traffic. The real relayer process
 * (`agentgpt relayer start`, rotation stage on, `every` shortened to seconds) settles LiteLLM-shaped POSTs on a
 * `hardhat node` over JSON-RPC with a real Redis, while it rotates its key three times; then `agentgpt keys revoke`
 * (its function, in this process) revokes the key in use. Checked against the chain: every call settled exactly once (each payer
 * charged exactly what its calls cost), every batch final, and after every RELAYER_ROLE grant or revocation on the
 * router (replayed from its events) one or two relayer keys were live, never zero, never three.
 */
import { rmSync } from "node:fs";

import { expect } from "chai";
import { Wallet, id } from "ethers";
import { Redis } from "ioredis";

import { RelayerKeyRotator__factory } from "../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import { loadRelayerConfig } from "../../relayer/config/index.js";
import { KeyRing } from "../../relayer/rotation/key-ring.js";
import { revokeRelayerKey } from "../../relayer/rotation/revoke.js";
import { setupRotation } from "../../relayer/rotation/setup.js";
import { SettlementStore } from "../../relayer/settler/settlement-store.js";
import { deployChainSuite, type ChainSuite } from "../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.js";
import { postSpend, startRelayer, writeRelayerConfig, type RelayerProcess, type RelayerSetup } from "../helpers/relayer-process.js";
import { chargesByPayer, spendLog, type SpendLog } from "../helpers/spend-logs.js";

const ROTATOR_KEY_ENV = "AGENTGPT_E2E_ROTATOR_KEY";
const PASSWORD_ENV = "AGENTGPT_E2E_ROTATED_PASSWORD";
const PASSWORD = "e2e rotated keystore password";
const RELAYER_ROLE = id("RELAYER_ROLE");

describe("e2e: relayer key rotation under traffic, then the leaked-key drill", function () {
  this.timeout(360_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let setup: RelayerSetup;
  let relayer: RelayerProcess | undefined;
  let stopTraffic = () => {};

  before(async function () {
    node = await startHardhatNode();
  });
  after(async function () {
    stopTraffic();
    await relayer?.stop();
    if (redis) {
      await dropPrefix(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
    if (setup) rmSync(setup.dir, { recursive: true, force: true });
    await node?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && relayer) {
      const lines = relayer.logs().split("\n").filter((line) => !line.includes('"msg":"ingested LiteLLM logs"'));
      process.stderr.write(`--- relayer logs (without ingest lines) ---\n${lines.slice(-150).join("\n")}\n`);
    }
  });

  it("rotates three times and revokes the key in use: 0 lost, 0 double-charged, one or two keys live throughout", async function () {
    suite = await deployChainSuite(node.url, { payers: 4, deposit: 1_000_000n * 10n ** 18n });
    const rotatorKey = new Wallet(NODE_KEYS[2]);
    const relayerAddress = new Wallet(suite.relayerKey).address;
    // governance (here the admin account) deploys the rotator, grants it the rotation power and adopts the relayer
    const rotator = await new RelayerKeyRotator__factory(suite.admin).deploy(suite.routerAddress, await suite.admin.getAddress(), rotatorKey.address, 2, 1);
    await rotator.waitForDeployment();
    const rotatorAddress = await rotator.getAddress();
    await (await suite.router.grantRole(await suite.router.DEFAULT_ADMIN_ROLE(), rotatorAddress)).wait();
    await (await rotator.adoptKey(relayerAddress)).wait();
    const startBlock = await suite.provider.getBlockNumber();

    prefix = uniquePrefix("rot");
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    setup = await writeRelayerConfig({
      redisUrl: REDIS_URL,
      prefix,
      rpcUrls: [node.url],
      router: suite.routerAddress,
      payers: suite.payers.map((p) => p.address),
      chainId: suite.chainId,
      maxReceipts: 2000,
      maxWait: "300ms",
      chainExtra: `    rotator: "${rotatorAddress}"`,
      settlerExtra: [
        "  rotation:",
        "    every: 6s",
        "    keys_dir: ./rotated-keys",
        `    password_env: ${PASSWORD_ENV}`,
        `    rotator: { key_env: ${ROTATOR_KEY_ENV} }`,
        "    fund: 1 ETH",
        "    poll: 250ms",
        "    lease_ttl: 3s",
      ].join("\n"),
    });
    const env = { [ROTATOR_KEY_ENV]: NODE_KEYS[2], [PASSWORD_ENV]: PASSWORD };
    const initial = new Map<number, bigint>();
    for (const [i, payer] of suite.payers.entries()) initial.set(i, await suite.router.balanceOf(payer.address));
    relayer = await startRelayer(setup, suite.relayerKey, env);

    // traffic: POSTs of 20 calls, aiming at 1,000 calls/s, until told to stop
    const logs: SpendLog[] = [];
    let sending = true;
    let failures = 0;
    stopTraffic = () => {
      sending = false;
    };
    const rate = Number(process.env.AGENTGPT_ROTATION_E2E_RATE ?? 1000); // calls/s
    const traffic = (async () => {
      const perBody = 20;
      const inFlight = new Set<Promise<void>>();
      let next = Date.now();
      while (sending) {
        const body = Array.from({ length: perBody }, () => {
          const n = logs.length;
          const log = spendLog(n % suite.payers.length, n % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 50 + ((n * 7919) % 4000), prefix);
          logs.push(log);
          return log.entry;
        });
        const post = (async () => {
          try {
            let response = await postSpend(setup.url, body);
            // like LiteLLM's retrying logger: anything but 200 means "not acknowledged, send again"
            for (let retry = 0; response.status !== 200 && retry < 50 && sending; retry++) {
              await new Promise((r) => setTimeout(r, 100));
              response = await postSpend(setup.url, body);
            }
            if (response.status !== 200) failures++;
          } catch {
            failures++;
          }
        })();
        inFlight.add(post);
        void post.finally(() => inFlight.delete(post));
        if (inFlight.size >= 16) await Promise.race(inFlight);
        next += (perBody * 1000) / rate; // 20 calls every 20 ms at 1,000 calls/s
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        else if (wait < -1000) next = Date.now(); // behind: catch up (the average stays at the rate), unless a stall made it hopeless
      }
      await Promise.all(inFlight);
    })();
    const trafficStarted = Date.now();

    // three rotations: after two complete (old key revoked), wait for the third switch; the drill then revokes the
    // key the settlers just took, while the previous one still drains (the next scheduled rotation is `every` away)
    const ring = new KeyRing(redis, prefix);
    const revokedByRotator = async () => (await rotator.queryFilter(rotator.filters.RelayerKeyRevoked(), startBlock)).length;
    const deadline = Date.now() + 150_000; // generous: a loaded 2-core CI box makes keystore scrypt and blocks slow
    const waitFor = async (what: string, done: () => Promise<boolean>) => {
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`${what} not reached in 150 s: ${JSON.stringify(await ring.get())}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitFor("two rotations", async () => (await revokedByRotator()) >= 2);
    const second = (await ring.get())!.active.address;
    await waitFor("the third switch", async () => {
      const now = await ring.get();
      return now !== null && now.active.address !== second && now.pending === null;
    });
    const inUse = (await ring.get())!.active.address;
    expect(inUse).to.not.equal(relayerAddress);
    // `agentgpt keys revoke` in this process (the same function the CLI calls): a CLI process needs many seconds to
    // start on a loaded 2-core box, long enough for the next scheduled rotation to make the key retiring first
    const rotation = await setupRotation(loadRelayerConfig(setup.configFile), redis, { scheduled: false, env: { ...process.env, ...env } });
    const outcome = await revokeRelayerKey(rotation, inUse, { timeoutMs: 60_000 });
    expect(outcome.ok, outcome.message).to.equal(true);
    // the drill revokes the key in use, exactly: it is replaced by a fresh key first (never found already retiring),
    // the settler moved to that key, and that key is the ring's active one and live on the router
    const fresh = outcome.replacedBy;
    expect(outcome.message).to.equal(`revoked on every chain; the settler moved to ${fresh}`);
    expect(fresh).to.be.a("string").and.not.equal(inUse);
    const afterDrill = (await ring.get())!;
    expect(afterDrill.active.address).to.equal(fresh);
    // marked revoked while its last transactions end, or already forgotten once drained
    expect(afterDrill.retiring.find((key) => key.address === inUse)?.revoked ?? true).to.equal(true);
    expect(await suite.router.hasRole(RELAYER_ROLE, inUse)).to.equal(false);
    expect(await suite.router.hasRole(RELAYER_ROLE, fresh!)).to.equal(true);
    // traffic keeps flowing on the fresh key for a moment, then stops
    await new Promise((r) => setTimeout(r, 2000));
    sending = false;
    await traffic;
    const seconds = (Date.now() - trafficStarted) / 1000;
    process.stdout.write(`      traffic: ${logs.length} calls in ${seconds.toFixed(1)} s (${Math.round(logs.length / seconds)} calls/s), ${failures} POSTs failed\n`);
    expect(failures).to.equal(0);

    // every call settled once, every batch final
    const store = new SettlementStore(redis, prefix, "local");
    const settledBy = Date.now() + 120_000;
    for (;;) {
      const stats = await store.stats();
      const active = await store.redis.zcard(store.key("active"));
      if ((stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0) >= logs.length && active === 0) break;
      if (Date.now() > settledBy) throw new Error(`not settled: ${JSON.stringify(stats)}, ${active} active`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const stats = await store.stats();
    expect(stats.receipts_settled).to.equal(logs.length);
    expect(stats.receipts_rejected ?? 0).to.equal(0);
    const expected = chargesByPayer(logs);
    let total = 0n;
    for (const [i, payer] of suite.payers.entries()) {
      const charged = initial.get(i)! - (await suite.router.balanceOf(payer.address));
      expect(charged, `payer ${i}`).to.equal(expected.get(i) ?? 0n);
      total += charged;
    }
    expect(await suite.router.totalEscrow()).to.equal(total);
    await relayer.stop();
    // the rotator key's transactions never collided (a collision drops an addKey or a revokeKey)
    expect(relayer.logs()).to.not.match(/nonce has already been used|nonce too low/i);

    // one or two relayer keys live after every grant and revocation, replayed from the router's events
    const events = [
      ...(await suite.router.queryFilter(suite.router.filters.RoleGranted(RELAYER_ROLE), 0)),
      ...(await suite.router.queryFilter(suite.router.filters.RoleRevoked(RELAYER_ROLE), 0)),
    ].sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
    const live = new Set<string>();
    const counts: number[] = [];
    for (const event of events) {
      const account = event.args[1] as string;
      if (event.fragment.name === "RoleGranted") live.add(account);
      else live.delete(account);
      counts.push(live.size);
    }
    // the deployment's grant, then 3 scheduled adds and the drill's, 2 scheduled revokes, the drill's two (the draining
    // key, then the key in use)
    expect(events.length).to.be.at.least(1 + 4 * 2);
    expect(counts.every((n) => n === 1 || n === 2), `live keys after each event: ${counts.join(",")}`).to.equal(true);
    expect(live.has(inUse)).to.equal(false);
    expect(live.has(relayerAddress)).to.equal(false);
  });
});
