/**
 * SIGHUP on the real relayer process (`agentgpt relayer start`, a `hardhat node`, Redis): a reload that fails is
 * logged as a failure only (the current keys stay in use, and the log says so), never followed by a success line;
 * and a key whose password lives in `password_file:` is taken on SIGHUP with the password written after the
 * process started (a variable cannot change under a running process).
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet, encryptKeystoreJson } from "ethers";
import type { Redis } from "ioredis";

import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { RELAYER_KEY_ENV, startRelayer, writeRelayerConfig, type RelayerProcess, type RelayerSetup } from "../../helpers/relayer-process.js";

const OLD_PW = "old-password-file-secret-1618";
const NEW_PW = "new-password-file-secret-2718";

async function keystore(path: string, key: string, password: string): Promise<void> {
  const wallet = new Wallet(key);
  await writeFile(path, await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, password, { scrypt: { N: 1024 } }));
}

async function until(what: string, probe: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The JSON log lines of the relayer after `offset` characters of its output. */
function linesAfter(relayer: RelayerProcess, offset: number): Array<Record<string, unknown>> {
  return relayer
    .logs()
    .slice(offset)
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("relayer start: SIGHUP key reload", function () {
  this.timeout(180_000);
  let node: HardhatNode;
  let redis: Redis;
  let suite: ChainSuite;
  let prefix: string;
  let setup: RelayerSetup | undefined;
  let relayer: RelayerProcess | undefined;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
    suite = await deployChainSuite(node.url, { payers: 1 });
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed" && relayer) process.stderr.write(`--- relayer logs ---\n${relayer.logs().slice(-5000)}\n`);
    await relayer?.stop();
    relayer = undefined;
    await dropPrefix(redis, prefix);
    if (setup) await rm(setup.dir, { recursive: true, force: true });
  });

  async function configWith(signer: string): Promise<{ original: string; write(signer: string): Promise<void> }> {
    prefix = uniquePrefix("sighup");
    setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: suite.payers.map((p) => p.address), chainId: suite.chainId });
    const original = await readFile(setup.configFile, "utf8");
    const write = (next: string) => writeFile(setup!.configFile, original.replace(`signer: { key_env: ${RELAYER_KEY_ENV} }`, next));
    await write(signer);
    return { original, write };
  }

  it("logs a failed reload as a failure only, keeps the current key, and says so", async function () {
    const config = await configWith(`signer: { key_env: ${RELAYER_KEY_ENV} }`);
    await keystore(join(setup!.dir, "next.json"), NODE_KEYS[7], NEW_PW);
    relayer = await startRelayer(setup!, suite.relayerKey);
    const oldAddress = new Wallet(suite.relayerKey).address;
    const store = new SettlementStore(redis, prefix, "local");
    await until("the settler reports its key", async () => (await store.signers())?.active === oldAddress);

    // the new keystore's password variable is not in the running process's environment
    await config.write(`signer:\n    keystore: next.json\n    password_env: PW_NOT_IN_THIS_PROCESS`);
    const offset = relayer.logs().length;
    relayer.child.kill("SIGHUP");
    await until("the reload's summary", () => linesAfter(relayer!, offset).some((line) => String(line["msg"]).startsWith("SIGHUP:")));
    await new Promise((r) => setTimeout(r, 500)); // anything logged right after it
    const lines = linesAfter(relayer, offset);
    const messages = lines.map((line) => String(line["msg"]));
    expect(messages.some((msg) => msg.includes("reloaded")), messages.join("\n")).to.equal(false);
    const summary = lines.find((line) => String(line["msg"]).startsWith("SIGHUP:"))!;
    expect(summary["level"]).to.equal(50);
    expect(summary["msg"]).to.equal("SIGHUP: key reload FAILED on local: the current keys stay in use there; fix the cause and send SIGHUP again");
    expect(JSON.stringify(summary["failed"])).to.include("set PW_NOT_IN_THIS_PROCESS to the password of the keystore");
    const perChain = lines.find((line) => line["msg"] === "key reload failed: the settler keeps its current keys")!;
    expect(perChain["active"]).to.equal(oldAddress);
    expect((await store.signers())?.active).to.equal(oldAddress);
  });

  it("takes a key whose password is in password_file, written after the process started", async function () {
    const newKey = new Wallet(NODE_KEYS[7]);
    await (await suite.router.grantRole(RELAYER_ROLE, newKey.address)).wait();
    const config = await configWith("signer:\n    keystore: old.json\n    password_file: old.password");
    await keystore(join(setup!.dir, "old.json"), suite.relayerKey, OLD_PW);
    await writeFile(join(setup!.dir, "old.password"), `${OLD_PW}\n`, { mode: 0o600 });
    relayer = await startRelayer(setup!, suite.relayerKey);
    const oldAddress = new Wallet(suite.relayerKey).address;
    const store = new SettlementStore(redis, prefix, "local");
    await until("the settler reports its key", async () => (await store.signers())?.active === oldAddress);

    // after the start: a new keystore with another password, in a new file; the config switched
    await keystore(join(setup!.dir, "new.json"), newKey.privateKey, NEW_PW);
    await writeFile(join(setup!.dir, "new.password"), `${NEW_PW}\n`, { mode: 0o600 });
    await config.write("signer:\n    keystore: new.json\n    password_file: new.password\n    retiring: { keystore: old.json, password_file: old.password }");
    const offset = relayer.logs().length;
    relayer.child.kill("SIGHUP");
    await until("the reload's summary", () => linesAfter(relayer!, offset).some((line) => String(line["msg"]).startsWith("SIGHUP:")));
    const summary = linesAfter(relayer, offset).find((line) => String(line["msg"]).startsWith("SIGHUP:"))!;
    expect(summary["msg"]).to.equal("SIGHUP: signing keys reloaded (other settings take a restart)");
    await until("the settler signs with the new key", async () => (await store.signers())?.active === newKey.address);
    expect((await store.signers())?.retiring).to.deep.equal([oldAddress]);
    expect(relayer.logs()).to.not.include(OLD_PW);
    expect(relayer.logs()).to.not.include(NEW_PW);
  });
});

describe("keys rotate: the switch snippet keeps each key's password source", function () {
  it("writes password_file for a key read from a file, password_env otherwise", async function () {
    const { switchSnippet } = await import("../../../relayer/keys/index.js");
    expect(
      switchSnippet(
        "settler.signer",
        { keystore: "/k/new.json", passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD", passwordFile: "/k/new.password" },
        { keystore: "/k/old.json", passwordEnv: "OLD_PW", passwordFile: null },
      ).split("\n"),
    ).to.deep.equal([
      "settler:",
      "  signer:",
      "    keystore: /k/new.json",
      "    password_file: /k/new.password",
      "    retiring:              # the key being replaced: finishes its own batches, signs nothing new",
      "      keystore: /k/old.json",
      "      password_env: OLD_PW",
    ]);
    expect(
      switchSnippet("settler.signer", { keystore: "/k/new.json", passwordEnv: "NEW_PW" }, { keystore: "/k/old.json", passwordEnv: "X", passwordFile: "/k/old.password" }).split("\n").slice(3),
    ).to.deep.equal([
      "    password_env: NEW_PW",
      "    retiring:              # the key being replaced: finishes its own batches, signs nothing new",
      "      keystore: /k/old.json",
      "      password_file: /k/old.password",
    ]);
  });
  it("refuses a key with both password_env and password_file, naming the field", async function () {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { ConfigError, loadRelayerConfig } = await import("../../../relayer/config/index.js");
    const dir = await mkdtemp(join(tmpdir(), "agentgpt-pwfile-"));
    try {
      const file = join(dir, "relayer.yaml");
      await writeFile(file, "chains: { local: {} }\nsettler:\n  signer: { keystore: k.json, password_env: PW, password_file: k.password }\n");
      let caught: unknown;
      try {
        loadRelayerConfig(file, { env: {} });
      } catch (error) {
        caught = error;
      }
      expect(caught).to.be.instanceOf(ConfigError);
      expect((caught as Error).message).to.include(
        "settler.signer.password_file: give the keystore's password either by password_env: (a variable) or by password_file: (a file), not both",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
