/**
 * The settler's retiring-key mode on a real `hardhat node` and Redis: after a key switch, new batches are signed
 * with the new key while a batch in flight on the old key is watched, bumped and mined with the old key; without
 * the old key it is still watched and rebroadcast, never re-signed under another key's nonce; and a reload that
 * names a key without RELAYER_ROLE is refused.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet, encryptKeystoreJson, toQuantity } from "ethers";
import type { Redis } from "ioredis";
import { pino } from "pino";

import { LocalArchive } from "../../../relayer/batcher/local-archive.js";
import { buildBatch } from "../../../relayer/batcher/batch-file.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { RpcPool } from "../../../relayer/settler/rpc-pool.js";
import { startSettlement } from "../../../relayer/settler/runtime.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { Settler, inFlightOn, signerOfRecord } from "../../../relayer/settler/settler.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { receipt } from "../../helpers/receipts.js";
import { startFaultProxy } from "../../helpers/rpc-fault-proxy.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { RELAYER_KEY_ENV, writeRelayerConfig } from "../../helpers/relayer-process.js";

describe("settler: retiring key (rotation drain)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let redis: Redis;
  let prefix: string;
  let archiveDir: string;
  const oldKey = () => new Wallet(suite.relayerKey);
  const newKey = new Wallet(NODE_KEYS[5]);

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  beforeEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
    suite = await deployChainSuite(node.url, { payers: 2 });
    await (await suite.router.grantRole(RELAYER_ROLE, newKey.address)).wait();
    prefix = uniquePrefix("retire");
    archiveDir = await mkdtemp(join(tmpdir(), "agentgpt-retire-"));
  });
  afterEach(async function () {
    await node.rpc("evm_setAutomine", [true]);
    await dropPrefix(redis, prefix);
    await rm(archiveDir, { recursive: true, force: true });
  });

  function settler(wallet: Wallet, retiring: Wallet[] = [], logs: string[] = [], rpcUrl = node.url): Settler {
    return new Settler({
      store: new SettlementStore(redis, prefix, "local"),
      rpc: new RpcPool([rpcUrl], { timeoutMs: 5000 }),
      archive: new LocalArchive(archiveDir),
      chainId: suite.chainId,
      router: suite.routerAddress,
      wallet,
      retiring,
      fees: { maxFeePerGas: 500n * 10n ** 9n, minPriorityFeePerGas: 10n ** 9n, bumpPercent: 10 },
      confirmations: 1,
      replacement: "bump",
      pollMs: 50,
      stuckAfterMs: 300,
      logger: pino({ level: "info" }, { write: (line: string) => void logs.push(line) }),
    });
  }

  /** Archives a batch of `receipts` and hands it to `s`; returns its id. */
  async function submit(s: Settler, receipts: Receipt[]): Promise<string> {
    const built = await buildBatch(receipts, Date.now(), callsFromOf(receipts[0]!.startTime, 3600), {
      chain: "local",
      chainId: suite.chainId,
      router: suite.routerAddress,
      usageBucket: 3600,
      registry: { providerId: (name: string) => ({ openai: 1, anthropic: 2, groq: 3 })[name] ?? 0, modelId: (name: string) => ({ "gpt-4-turbo": 1, "claude-3-opus": 2, "mixtral-8x22b": 3 })[name] ?? 0 },
    });
    const path = await new LocalArchive(archiveDir).write("local", built.file.batchId, built.bytes);
    const amount = built.charges.reduce((sum, c) => sum + c.amount, 0n).toString();
    await s.submit({ batchId: built.file.batchId, path, cid: built.cid, receiptsRoot: built.file.receiptsRoot, callsFrom: built.file.callsFrom, rows: built.charges.length, receipts: receipts.length, amount });
    return built.file.batchId;
  }

  async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 20_000): Promise<T> {
    const started = Date.now();
    for (;;) {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
      if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const store = () => new SettlementStore(redis, prefix, "local");
  const [a, b] = [0, 1];

  it("signs new batches with the new key while the old key finishes (and bumps) its own", async function () {
    const logs: string[] = [];
    const s = settler(oldKey(), [], logs);
    s.start();
    try {
      await node.rpc("evm_setAutomine", [false]);
      const first = await submit(s, [receipt(suite.payers[a]!.address, "openai", "gpt-4-turbo", 1000)]);
      await until("the first batch sent", async () => (await store().get(first))?.state === "sent");
      expect(signerOfRecord((await store().get(first))!)).to.equal(oldKey().address);

      s.useKeys(newKey, [oldKey()]);
      const second = await submit(s, [receipt(suite.payers[b]!.address, "groq", "mixtral-8x22b", 700)]);
      await until("the second batch sent", async () => (await store().get(second))?.state === "sent");
      expect(signerOfRecord((await store().get(second))!)).to.equal(newKey.address);
      expect(await store().signers()).to.include({ active: newKey.address });
      expect((await store().signers())!.retiring).to.deep.equal([oldKey().address]);

      // the old batch is stuck: its replacement is signed by the old key, with the old key's nonce
      const bumped = await until("a replacement of the first batch", async () => {
        const record = await store().get(first);
        return record !== null && record.txs.length >= 2 ? record : null;
      });
      expect(signerOfRecord(bumped)).to.equal(oldKey().address);
      expect(inFlightOn(await store().active(), oldKey().address).map((r) => r.batchId)).to.deep.equal([first]);

      await node.rpc("evm_setAutomine", [true]);
      await node.rpc("evm_mine", []);
      await until("both final", async () => (await store().active()).length === 0);
      expect(inFlightOn(await store().active(), oldKey().address)).to.deep.equal([]);
      const [one, two] = [(await store().get(first))!, (await store().get(second))!];
      expect((await suite.provider.getTransaction(one.txHash!))!.from).to.equal(oldKey().address);
      expect((await suite.provider.getTransaction(two.txHash!))!.from).to.equal(newKey.address);
      expect(Number((await suite.router.batchInfo(first)).status)).to.equal(1);
      await until("the drain logged", async () => logs.some((line) => line.includes("retiring key drained")));
    } finally {
      await s.stop();
    }
  });

  it("without the old key, watches and rebroadcasts its batch: never re-signs it under the new key's nonce", async function () {
    const logs: string[] = [];
    // the new key's account is ahead: a nonce check against it would call the old batch's nonce "consumed"
    const ahead = (await suite.provider.getTransactionCount(newKey.address)) + 7;
    await node.rpc("hardhat_setNonce", [newKey.address, toQuantity(ahead)]);
    const before = settler(oldKey());
    before.start();
    await node.rpc("evm_setAutomine", [false]);
    let batchId: string;
    try {
      batchId = await submit(before, [receipt(suite.payers[a]!.address, "openai", "gpt-4-turbo", 1500)]);
      await until("sent", async () => (await store().get(batchId))?.state === "sent");
    } finally {
      await before.stop();
    }
    const original = (await store().get(batchId))!.txs[0]!.hash;
    expect((await store().get(batchId))!.nonce).to.be.lessThan(ahead);
    const after = settler(newKey, [], logs);
    after.start();
    try {
      await until("the missing key reported", async () => logs.some((line) => line.includes("in flight on a key this settler does not hold")), 10_000);
      const record = (await store().get(batchId))!;
      expect(record.state).to.equal("sent");
      expect(record.txs.map((tx) => tx.hash)).to.deep.equal([original]); // rebroadcast as is, never bumped or re-signed
      await node.rpc("evm_setAutomine", [true]);
      await node.rpc("evm_mine", []);
      await until("final", async () => (await store().get(batchId))?.state === "final");
      expect((await store().get(batchId))!.txHash).to.equal(original);
      expect(logs.some((line) => line.includes("nonce consumed by another transaction"))).to.equal(false);
    } finally {
      await after.stop();
    }
  });

  it("a send refused for want of gas names the key that signed it (a retiring key's batch), not the active key", async function () {
    // geth's answer to a sender that cannot pay (EDR words it otherwise): the operator must fund the signing key
    const proxy = await startFaultProxy(node.url);
    proxy.refuseSends("insufficient funds for gas * price + value: balance 0, tx cost 1000000000000000");
    const logs: string[] = [];
    const s = settler(oldKey(), [], logs, proxy.url);
    const refusals = () => logs.filter((line) => line.includes("cannot pay for gas")).map((line) => JSON.parse(line) as { signer: string; batchId: string });
    s.start();
    try {
      const batchId = await submit(s, [receipt(suite.payers[a]!.address, "openai", "gpt-4-turbo", 1200)]);
      await until("the refusal logged", async () => refusals().length > 0);
      expect(refusals()[0]).to.include({ signer: oldKey().address, batchId });
      expect((await store().get(batchId))!.state).to.equal("signed"); // kept, sent again next pass

      s.useKeys(newKey, [oldKey()]);
      await until("the new key active", async () => (await store().signers())?.active === newKey.address);
      const seen = refusals().length;
      await until("a refusal under the new active key", async () => refusals().length > seen);
      expect(refusals().at(-1)).to.include({ signer: oldKey().address, batchId });
      expect(refusals().map((line) => line.signer)).to.not.include(newKey.address);

      proxy.refuseSends(null);
      await until("final", async () => (await store().get(batchId))?.state === "final");
      expect((await suite.provider.getTransaction((await store().get(batchId))!.txHash!))!.from).to.equal(oldKey().address);
    } finally {
      await s.stop();
      await proxy.close();
    }
  });

  it("reloads keys only when the new key holds RELAYER_ROLE (the runtime behind SIGHUP)", async function () {
    const unprivileged = new Wallet(NODE_KEYS[6]);
    const setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: suite.payers.map((p) => p.address), chainId: suite.chainId });
    try {
      const json = await encryptKeystoreJson({ address: unprivileged.address, privateKey: unprivileged.privateKey }, "pw-for-this-test-only", { scrypt: { N: 1024 } });
      await writeFile(join(setup.dir, "next.json"), json);
      const switched = join(setup.dir, "switched.yaml");
      await writeFile(
        switched,
        (await readFile(setup.configFile, "utf8")).replace(
          `signer: { key_env: ${RELAYER_KEY_ENV} }`,
          `signer:\n    keystore: next.json\n    password_env: NEXT_PW\n    retiring: { key_env: ${RELAYER_KEY_ENV} }`,
        ),
      );
      const env = { [RELAYER_KEY_ENV]: suite.relayerKey, NEXT_PW: "pw-for-this-test-only" };
      const runtime = await startSettlement(loadRelayerConfig(setup.configFile), { env });
      try {
        const live = runtime.chains[0]!.settler!;
        await runtime.reloadKeys(loadRelayerConfig(switched));
        expect(live.activeSigner).to.equal(oldKey().address); // refused: no RELAYER_ROLE
        await (await suite.router.grantRole(RELAYER_ROLE, unprivileged.address)).wait();
        await runtime.reloadKeys(loadRelayerConfig(switched));
        await until("keys applied", async () => (await store().signers())?.active === unprivileged.address);
        expect(live.activeSigner).to.equal(unprivileged.address);
        expect(live.retiringSigners).to.deep.equal([oldKey().address]);
      } finally {
        await runtime.stop();
      }
    } finally {
      await rm(setup.dir, { recursive: true, force: true });
    }
  });
});
