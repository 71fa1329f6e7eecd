/**
 * End to end: scheduled relayer key rotation with the new keys generated inside a PKCS#11 token (SoftHSM2), then the
 * leaked-key drill as an operator runs it. The real relayer process (`agentgpt relayer start`, `settler.rotation.key:
 * pkcs11`, `every` shortened to seconds) settles LiteLLM-shaped POSTs on a `hardhat node` while its rotation stage
 * creates two keys in the token and switches to each; the token is then read directly: every created private key is
 * sensitive and not extractable, its value unreadable. The relayer is restarted with a long schedule: it opens the
 * ring's active key again by its label and id in the token, and `node bin/agentgpt.mjs keys revoke <active key>` (a
 * real process) makes it revoke that key at once and move to a fresh key generated in the token. Checked against the
 * chain: batches signed by each created key, every call settled exactly once, nothing lost.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { expect } from "chai";
import { getAddress, id, Wallet } from "ethers";
import { Redis } from "ioredis";
import pkcs11js from "pkcs11js";

import { RelayerKeyRotator__factory } from "../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import type { RelayerKeyRotator } from "../../typechain-types/governance/RelayerKeyRotator.sol/RelayerKeyRotator.js";
import { KeyRing, type KeyRingState } from "../../relayer/rotation/key-ring.js";
import { SettlementStore } from "../../relayer/settler/settlement-store.js";
import { agentgpt } from "../relayer/backup/helpers.js";
import { deployChainSuite, type ChainSuite } from "../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis.js";
import { postSpend, startRelayer, writeRelayerConfig, type RelayerProcess, type RelayerSetup } from "../helpers/relayer-process.js";
import { softHsmToken, type SoftHsmToken } from "../helpers/softhsm.js";
import { chargesByPayer, spendLog, type SpendLog } from "../helpers/spend-logs.js";

const ROTATOR_KEY_ENV = "AGENTGPT_E2E_ROTATOR_KEY";
const RELAYER_ROLE = id("RELAYER_ROLE");
const LABEL_PREFIX = "e2e-rot-";

interface TokenKey {
  readonly label: string;
  readonly extractable: number;
  readonly sensitive: number;
  readonly neverExtractable: number;
  /** the PKCS#11 error code reading CKA_VALUE gave (null: the value was read, i.e. the key was exported) */
  readonly valueError: number | null;
}

/** Every private key on the token, read with pkcs11js directly (not through the relayer's code). */
function privateKeysOnToken(token: SoftHsmToken): TokenKey[] {
  const lib = new pkcs11js.PKCS11();
  lib.load(token.module);
  lib.C_Initialize();
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label)!;
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
    const keys = lib.C_FindObjects(session, 100);
    lib.C_FindObjectsFinal(session);
    const out = keys.map((key): TokenKey => {
      const [label, extractable, sensitive, never] = lib.C_GetAttributeValue(session, key, [
        { type: pkcs11js.CKA_LABEL },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      ]);
      let valueError: number | null = null;
      try {
        lib.C_GetAttributeValue(session, key, [{ type: pkcs11js.CKA_VALUE }]);
      } catch (error) {
        valueError = (error as pkcs11js.Pkcs11Error).code;
      }
      return {
        label: (label!.value as Buffer).toString(),
        extractable: (extractable!.value as Buffer)[0]!,
        sensitive: (sensitive!.value as Buffer)[0]!,
        neverExtractable: (never!.value as Buffer)[0]!,
        valueError,
      };
    });
    lib.C_CloseSession(session);
    return out;
  } finally {
    lib.C_Finalize();
    lib.close();
  }
}

describe("e2e: relayer key rotation with keys generated in a PKCS#11 token (SoftHSM2), and `agentgpt keys revoke`", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let token: SoftHsmToken;
  let redis: Redis;
  let prefix: string;
  let setup: RelayerSetup;
  let rotator: RelayerKeyRotator;
  let relayer: RelayerProcess | undefined;
  let startBlock: number;
  let relayerAddress: string;
  const logs: SpendLog[] = [];
  const initial = new Map<number, bigint>();
  let env: Record<string, string>;
  let stopTraffic: (() => Promise<void>) | null = null;

  before(async function () {
    node = await startHardhatNode();
    token = await softHsmToken("rotation");
    suite = await deployChainSuite(node.url, { payers: 3, deposit: 1_000_000n * 10n ** 18n });
    const rotatorKey = new Wallet(NODE_KEYS[2]);
    relayerAddress = new Wallet(suite.relayerKey).address;
    // governance (here the admin account) deploys the rotator (2 keys live at most, 1 s apart), grants it the
    // rotation power and adopts the relayer key
    rotator = await new RelayerKeyRotator__factory(suite.admin).deploy(suite.routerAddress, await suite.admin.getAddress(), rotatorKey.address, 2, 1);
    await rotator.waitForDeployment();
    await (await suite.router.grantRole(await suite.router.DEFAULT_ADMIN_ROLE(), await rotator.getAddress())).wait();
    await (await rotator.adoptKey(relayerAddress)).wait();
    startBlock = await suite.provider.getBlockNumber();
    for (const [i, payer] of suite.payers.entries()) initial.set(i, await suite.router.balanceOf(payer.address));
    prefix = uniquePrefix("rotpk");
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    env = { [ROTATOR_KEY_ENV]: NODE_KEYS[2]!, ...token.env };
  });
  after(async function () {
    await relayer?.stop();
    if (redis) {
      await dropPrefix(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
    if (setup) rmSync(setup.dir, { recursive: true, force: true });
    await node?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed" && relayer) {
      // the rotation stage's lines and every warning or error (ingest lines left out)
      const lines = relayer.logs().split("\n").filter((line) => !line.includes('"msg":"ingested LiteLLM logs"') && (line.includes('"stage":"rotation"') || !/"level":[23]0,/.test(line)));
      process.stderr.write(`--- relayer logs (rotation, warnings, errors) ---\n${lines.slice(-150).join("\n")}\n`);
    }
    // each test owns its relayer and its traffic: a failed test must not leave them running (the next test starts
    // its own relayer, and a relayer child or a POST loop left over held the test process open until the exit guard)
    await stopTraffic?.().catch(() => undefined);
    stopTraffic = null;
    await relayer?.stop();
    relayer = undefined;
  });

  /** The relayer's config with the rotation `every` this long (the same Redis prefix, token and directory each time). */
  async function config(every: string): Promise<void> {
    const rotation = [
      "  rotation:",
      `    every: ${every}`,
      "    key: pkcs11",
      "    pkcs11:",
      `      module: ${token.module}`,
      `      token: ${token.label}`,
      "      pin_file: ./hsm.pin",
      `      label_prefix: ${LABEL_PREFIX}`,
      `    rotator: { key_env: ${ROTATOR_KEY_ENV} }`,
      "    fund: 1 ETH",
      "    poll: 250ms",
      "    lease_ttl: 3s",
    ].join("\n");
    const next = await writeRelayerConfig({
      redisUrl: REDIS_URL,
      prefix,
      rpcUrls: [node.url],
      router: suite.routerAddress,
      payers: suite.payers.map((p) => p.address),
      chainId: suite.chainId,
      maxReceipts: 500,
      maxWait: "300ms",
      chainExtra: `    rotator: "${await rotator.getAddress()}"`,
      settlerExtra: rotation,
    });
    if (setup) rmSync(setup.dir, { recursive: true, force: true });
    setup = next;
    writeFileSync(join(setup.dir, "hsm.pin"), `${token.pin}\n`, { mode: 0o600 });
  }

  /** Light traffic (about 100 calls/s) until the returned function is called; resolves once every POST is acknowledged. */
  function traffic(): () => Promise<void> {
    let sending = true;
    const run = (async () => {
      while (sending) {
        const body = Array.from({ length: 10 }, () => {
          const n = logs.length;
          const log = spendLog(n % suite.payers.length, n % 3 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 50 + ((n * 7919) % 4000), prefix);
          logs.push(log);
          return log.entry;
        });
        // like LiteLLM's retrying logger: anything but 200 means "send again"
        for (let attempt = 0; ; attempt++) {
          const status = await postSpend(setup.url, body).then(
            (r) => r.status,
            () => 0,
          );
          if (status === 200) break;
          if (attempt > 300) throw new Error(`a POST was not acknowledged in 30 s (status ${status})`);
          await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const stop = async () => {
      sending = false;
      await run;
    };
    stopTraffic = stop;
    return stop;
  }

  const ring = () => new KeyRing(redis, prefix).get();
  async function waitFor(what: string, seconds: number, done: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`${what} not reached in ${seconds} s: ${JSON.stringify(await ring())}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async function allSettled(): Promise<void> {
    const store = new SettlementStore(redis, prefix, "local");
    await waitFor("every call settled", 60, async () => {
      const stats = await store.stats();
      const active = await store.redis.zcard(store.key("active"));
      return (stats.receipts_settled ?? 0) + (stats.receipts_rejected ?? 0) >= logs.length && active === 0;
    });
    const stats = await store.stats();
    expect(stats.receipts_settled).to.equal(logs.length);
    expect(stats.receipts_rejected ?? 0).to.equal(0);
  }
  /** Who sent each BatchSettled transaction since the rotator was deployed. */
  async function batchSenders(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const event of await suite.router.queryFilter(suite.router.filters.BatchSettled(), startBlock)) {
      const tx = await suite.provider.getTransaction(event.transactionHash);
      const from = getAddress(tx!.from);
      out.set(from, (out.get(from) ?? 0) + 1);
    }
    return out;
  }
  // the keys the rotation created (adoptKey's event for the configured key is not one of them)
  const added = async () => (await rotator.queryFilter(rotator.filters.RelayerKeyAdded(), startBlock)).map((e) => getAddress(e.args.key)).filter((key) => key !== getAddress(relayerAddress));

  it("rotates twice to keys the rotation stage generates in the token; each settles batches; no key is exportable", async function () {
    await config("5s");
    relayer = await startRelayer(setup, suite.relayerKey, env);
    const stop = traffic();
    // two rotations complete: two keys added by the rotator, the first two keys revoked by it
    await waitFor("two rotations", 120, async () => (await rotator.queryFilter(rotator.filters.RelayerKeyRevoked(), startBlock)).length >= 2);
    // the second new key settles some batches before traffic stops
    const second = (await added())[1]!;
    await waitFor("a batch signed by the second created key", 30, async () => ((await batchSenders()).get(second) ?? 0) > 0);
    await stop();
    await allSettled();
    // the rotator key's transactions never collided (a collision drops an addKey or a revokeKey)
    expect(relayer.logs()).to.not.match(/nonce has already been used|nonce too low/i);
    // stopped before the token is compared with the chain: every 5 s the schedule creates a key in the token, and a
    // key created but not yet added made the token hold one more key than the rotator had added (a stop lets the
    // step under way finish: created, added, switched)
    await relayer.stop();
    relayer = undefined;

    const created = await added();
    expect(created.length).to.be.at.least(2);
    const state = (await ring()) as KeyRingState;
    // the ring holds references to open the keys again, never a secret
    const text = JSON.stringify(state);
    expect(text).to.not.include(token.pin);
    expect(state.active.ref.kind).to.equal("pkcs11");
    if (state.active.ref.kind === "pkcs11") {
      expect(state.active.ref.token).to.equal(token.label);
      expect(state.active.ref.keyLabel.startsWith(LABEL_PREFIX)).to.equal(true);
      expect(state.active.ref.keyId).to.match(/^0x[0-9a-f]{32}$/);
    }
    const senders = await batchSenders();
    expect(senders.get(relayerAddress) ?? 0, "the configured key settled before the first rotation").to.be.greaterThan(0);
    for (const key of created.slice(0, 2)) expect(senders.get(key) ?? 0, `batches signed by ${key}`).to.be.greaterThan(0);

    // the token holds one private key per created relayer key, each sensitive and never extractable
    const onToken = privateKeysOnToken(token);
    expect(onToken.length).to.equal(created.length);
    for (const key of onToken) {
      expect(key.label.startsWith(LABEL_PREFIX), key.label).to.equal(true);
      expect(key.sensitive, `${key.label} CKA_SENSITIVE`).to.equal(1);
      expect(key.extractable, `${key.label} CKA_EXTRACTABLE`).to.equal(0);
      expect(key.neverExtractable, `${key.label} CKA_NEVER_EXTRACTABLE`).to.equal(1);
      expect(key.valueError, `${key.label}: its CKA_VALUE must not be readable`).to.equal(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
    }
  });

  it("after a restart opens the ring's key from the token; `agentgpt keys revoke` (a process) revokes it at once and settlement moves to a fresh key", async function () {
    // a long schedule: only the drill changes keys now
    await config("1h");
    const before = (await ring())!;
    const inUse = before.active.address;
    // a restarted relayer opens the active key again by its label and id (nothing of it was kept in the process)
    relayer = await startRelayer(setup, suite.relayerKey, env);
    const stop = traffic();
    const sentBefore = (await batchSenders()).get(inUse) ?? 0;
    await waitFor("a batch signed by the reopened key after the restart", 30, async () => ((await batchSenders()).get(inUse) ?? 0) > sentBefore);

    const run = await agentgpt(["keys", "revoke", inUse, "--config", setup.configFile, "--timeout", "60"], env, { timeoutMs: 90_000 });
    expect(run.code, `${run.stdout}\n${run.stderr}`).to.equal(0);
    expect(run.stdout).to.include(`revocation of ${inUse} requested`);
    // the drill revokes the key in use, exactly: replaced by a fresh key the ring makes active, never found retiring
    const after = (await ring())!;
    const fresh = after.active.address;
    expect(run.stdout).to.include(`revoked on every chain; the settler moved to ${fresh}`);
    expect(`${run.stdout}${run.stderr}`).to.not.include(token.pin);
    expect(await suite.router.hasRole(RELAYER_ROLE, inUse)).to.equal(false);
    expect(fresh).to.not.equal(inUse);
    // marked revoked while its last transactions end, or already forgotten once drained
    expect(after.retiring.find((key) => key.address === inUse)?.revoked ?? true).to.equal(true);
    expect(after.active.ref.kind).to.equal("pkcs11");
    expect(await suite.router.hasRole(RELAYER_ROLE, fresh)).to.equal(true);
    // the fresh key was generated in the token by the running relayer, and settles the traffic that keeps coming
    expect(privateKeysOnToken(token).map((k) => k.label)).to.include(after.active.ref.kind === "pkcs11" ? after.active.ref.keyLabel : "?");
    await waitFor("a batch signed by the fresh key", 30, async () => ((await batchSenders()).get(fresh) ?? 0) > 0);
    await stop();
    await allSettled();

    // nothing lost, nothing charged twice: every payer charged exactly what its calls cost
    const expected = chargesByPayer(logs);
    let total = 0n;
    for (const [i, payer] of suite.payers.entries()) {
      const charged = initial.get(i)! - (await suite.router.balanceOf(payer.address));
      expect(charged, `payer ${i}`).to.equal(expected.get(i) ?? 0n);
      total += charged;
    }
    expect(await suite.router.totalEscrow()).to.equal(total);
    expect(relayer!.logs()).to.not.match(/nonce has already been used|nonce too low/i);
    // the revoked key settled nothing after its revocation
    const revokedAt = (await rotator.queryFilter(rotator.filters.RelayerKeyRevoked(inUse), startBlock))[0]!.blockNumber;
    for (const event of await suite.router.queryFilter(suite.router.filters.BatchSettled(), revokedAt + 1)) {
      expect(getAddress((await suite.provider.getTransaction(event.transactionHash))!.from)).to.not.equal(inUse);
    }
  });
});
