/**
 * The PKCS#11 signer against SoftHSM2 (a real PKCS#11 module) and a real `hardhat node`: `agentgpt keys new --pkcs11`
 * creates a secp256k1 key inside the token that cannot be exported; the token's signatures, made canonical (low s,
 * recovered v), are accepted by the chain: an EIP-712 permit verified by the token contract, and batches settled by
 * the relayer's settlement runtime configured with `kind: pkcs11` (a stuck transaction replaced with a new
 * signature from the token); no PIN in any output.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { expect } from "chai";
import { Signature, getBytes, keccak256, parseEther, toUtf8Bytes, verifyMessage, verifyTypedData, SigningKey, computeAddress } from "ethers";
import type { Redis } from "ioredis";
import pkcs11js from "pkcs11js";
import { pino } from "pino";

import { buildBatch } from "../../../relayer/batcher/batch-file.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import {
  createPkcs11Key,
  finalizePkcs11,
  loadConfiguredSigner,
  openPkcs11Signer,
  SECP256K1_N,
  SignerError,
  SigningKeyError,
  type DeviceSigner,
} from "../../../relayer/keys/signers/index.js";
import { startSettlement } from "../../../relayer/settler/runtime.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { signerOfRecord } from "../../../relayer/settler/settler.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { RELAYER_KEY_ENV, writeRelayerConfig } from "../../helpers/relayer-process.js";
import { softHsmToken, type SoftHsmToken } from "../../helpers/softhsm.js";
import { agentgpt } from "../backup/helpers.js";
import { expectNoSecrets } from "./secrets.js";

/** Opens the token with pkcs11js directly (not through the signer) and reads what it says about the private key. */
function inspectPrivateKey(token: SoftHsmToken, label: string): { extractable: number; sensitive: number; valueError: number | null; curve: string } {
  const lib = new pkcs11js.PKCS11();
  lib.load(token.module);
  lib.C_Initialize();
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label)!;
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: label }]);
    const [key] = lib.C_FindObjects(session, 2);
    lib.C_FindObjectsFinal(session);
    const [extractable, sensitive, params] = lib.C_GetAttributeValue(session, key!, [{ type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EC_PARAMS }]);
    let valueError: number | null = null;
    try {
      lib.C_GetAttributeValue(session, key!, [{ type: pkcs11js.CKA_VALUE }]);
    } catch (error) {
      valueError = (error as pkcs11js.Pkcs11Error).code;
    }
    lib.C_CloseSession(session);
    return { extractable: (extractable!.value as Buffer)[0]!, sensitive: (sensitive!.value as Buffer)[0]!, valueError, curve: (params!.value as Buffer).toString("hex") };
  } finally {
    lib.C_Finalize();
    lib.close();
  }
}

describe("PKCS#11 signer (SoftHSM2)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let token: SoftHsmToken;

  before(async function () {
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 2 });
    token = await softHsmToken();
  });
  after(async function () {
    finalizePkcs11();
    await node?.stop();
  });

  it("agentgpt keys new --pkcs11 creates a secp256k1 key inside the token that cannot be exported, and prints its address", async function () {
    const env = { ...token.env, AGENTGPT_PKCS11_PIN: token.pin };
    const args = ["keys", "new", "--pkcs11", "--module", token.module, "--token", token.label, "--label", "relayer-1"];
    const created = await agentgpt(args, env);
    expect(created.code, created.stderr).to.equal(0);
    const address = /address (0x[0-9a-fA-F]{40})/.exec(created.stdout)?.[1];
    expect(address).to.be.a("string");
    expect(created.stdout).to.include("kind: pkcs11");
    expect(created.stdout).to.include(`token: ${token.label}`);
    expect(created.stdout).to.include("key_label: relayer-1");

    const inspected = inspectPrivateKey(token, "relayer-1");
    expect(inspected.extractable).to.equal(0);
    expect(inspected.sensitive).to.equal(1);
    expect(inspected.valueError).to.equal(pkcs11js.CKR_ATTRIBUTE_SENSITIVE); // the private value cannot be read out
    expect(inspected.curve).to.equal("06052b8104000a"); // secp256k1

    // the signer finds the same key by its label and derives the same address from the token's public key
    finalizePkcs11();
    const signer = openPkcs11Signer({ module: token.module, token: token.label, keyLabel: "relayer-1" }, token.pin);
    try {
      expect(signer.address).to.equal(address);
    } finally {
      await signer.close();
    }

    const shown = await agentgpt(["keys", "show", "--pkcs11", "--module", token.module, "--token", token.label, "--label", "relayer-1", "--rpc", node.url, "--router", suite.routerAddress], env);
    expect(shown.code, shown.stderr).to.equal(0);
    expect(shown.stdout).to.include(`key ${address}`);
    expect(shown.stdout).to.include("roles on AutoPayLLM: none");

    const again = await agentgpt(args, env);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.include(`already holds an object labelled "relayer-1": keys are never replaced; choose another --label`);

    const wrongPin = await agentgpt([...args.slice(0, -1), "relayer-2"], { ...token.env, AGENTGPT_PKCS11_PIN: "not-the-pin" });
    expect(wrongPin.code).to.equal(2);
    expect(wrongPin.stderr).to.include("the user PIN given is wrong");
    expectNoSecrets([created, shown, again, wrongPin], [token.pin, token.soPin]);
  });

  describe("with a key created in the token", function () {
    let signer: DeviceSigner;
    let address: string;
    before(async function () {
      const created = createPkcs11Key({ module: token.module, token: token.label, keyLabel: "relayer-sign" }, token.pin);
      signer = openPkcs11Signer({ module: token.module, token: token.label, keyLabel: "relayer-sign" }, token.pin);
      address = created.address;
      expect(signer.address).to.equal(created.address);
    });
    after(async function () {
      await signer?.close();
    });

    it("normalizes the token's high-s signatures and recovers v: every signature verifies to the token's address", async function () {
      let high = 0;
      for (let i = 0; i < 24; i++) {
        const digest = getBytes(keccak256(toUtf8Bytes(`digest ${i}`)));
        const raw = await signer.device.signDigest(digest); // as the token returns it
        if (raw.s > SECP256K1_N / 2n) high += 1;
        const signature = await signer.signDigest(digest);
        expect(BigInt(signature.s) <= SECP256K1_N / 2n, "low s").to.equal(true);
        expect(computeAddress(SigningKey.recoverPublicKey(digest, signature))).to.equal(signer.address);
      }
      expect(high, "the token returned some high-s signatures, which were normalized").to.be.greaterThan(0);
      const message = "agentgpt relayer";
      expect(verifyMessage(message, await signer.signMessage(message))).to.equal(signer.address);
      // a PKCS#11 session runs one operation at a time: signatures asked for at once are made one after the other
      const digests = Array.from({ length: 8 }, (_, i) => getBytes(keccak256(toUtf8Bytes(`parallel ${i}`))));
      const parallel = await Promise.all(digests.map((digest) => signer.signDigest(digest)));
      parallel.forEach((signature, i) => expect(computeAddress(SigningKey.recoverPublicKey(digests[i]!, signature))).to.equal(signer.address));
    });

    it("signs an EIP-712 permit the token contract verifies on chain", async function () {
      const spender = suite.payers[0]!.address;
      const domain = await suite.token.eip712Domain();
      const typed = {
        domain: { name: domain.name, version: domain.version, chainId: suite.chainId, verifyingContract: await suite.token.getAddress() },
        types: { Permit: [{ name: "owner", type: "address" }, { name: "spender", type: "address" }, { name: "value", type: "uint256" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" }] },
        value: { owner: signer.address, spender, value: 12_345n, nonce: await suite.token.nonces(signer.address), deadline: 2n ** 40n },
      };
      const signature = await signer.signTypedData(typed.domain, typed.types, typed.value);
      expect(verifyTypedData(typed.domain, typed.types, typed.value, signature)).to.equal(signer.address);
      const { v, r, s } = Signature.from(signature);
      await (await suite.token.permit(signer.address, spender, 12_345n, 2n ** 40n, v, r, s)).wait();
      expect(await suite.token.allowance(signer.address, spender)).to.equal(12_345n);
      // the same signature for another value is refused by the contract
      const refused = await suite.token.permit.staticCall(signer.address, spender, 12_346n, 2n ** 40n, v, r, s).then(() => false, () => true);
      expect(refused).to.equal(true);
    });

    it("a signer refuses a wrong or missing PIN, and a key or token that is not there, naming the fix", async function () {
      // PKCS#11 logs in once per process and token: close what is logged in so the PIN is checked again
      await signer.close();
      finalizePkcs11();
      const config = { kind: "pkcs11" as const, passwordEnv: "UNUSED", pkcs11: { module: token.module, token: token.label, keyLabel: "relayer-sign", pinEnv: "HSM_PIN" } };
      let missing: unknown;
      await loadConfiguredSigner(config, { env: {} }).catch((error: unknown) => (missing = error));
      expect(missing).to.be.instanceOf(SigningKeyError);
      expect((missing as Error).message).to.include("settler signer: set HSM_PIN to the user PIN of the PKCS#11 token");
      expect(() => openPkcs11Signer({ module: token.module, token: token.label, keyLabel: "relayer-sign" }, "wrong-pin")).to.throw(SignerError, "the user PIN given is wrong");
      expect(() => openPkcs11Signer({ module: token.module, token: token.label, keyLabel: "nope" }, token.pin)).to.throw(SignerError, 'no EC private key "nope"');
      expect(() => openPkcs11Signer({ module: token.module, token: "no-such-token", keyLabel: "nope" }, token.pin)).to.throw(SignerError, 'no token "no-such-token"');
      expect(() => openPkcs11Signer({ module: "/nonexistent/libpkcs11.so", token: token.label, keyLabel: "relayer-sign" }, token.pin)).to.throw(SignerError, "cannot load it");
      const loaded = await loadConfiguredSigner(config, { env: { HSM_PIN: token.pin } });
      signer = loaded.signer as DeviceSigner;
      expect(signer.address).to.equal(address);
    });
  });

  describe("settling batches with the relayer's settlement runtime (kind: pkcs11)", function () {
    let redis: Redis;
    let prefix: string;
    before(function () {
      redis = testRedis();
    });
    after(function () {
      redis?.disconnect();
    });
    beforeEach(function () {
      prefix = uniquePrefix("pkcs11");
    });
    afterEach(async function () {
      await node.rpc("evm_setAutomine", [true]);
      await dropPrefix(redis, prefix);
    });

    async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
      const started = Date.now();
      for (;;) {
        const value = await probe();
        if (value !== null && value !== undefined && value !== false) return value;
        if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it("settles batches on chain with the token's key, replaces a stuck one with a new token signature, and logs no PIN", async function () {
      const hsm = createPkcs11Key({ module: token.module, token: token.label, keyLabel: "settler" }, token.pin);
      await (await suite.router.grantRole(RELAYER_ROLE, hsm.address)).wait();
      await (await suite.admin.sendTransaction({ to: hsm.address, value: parseEther("10") })).wait();

      const setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: suite.payers.map((p) => p.address), chainId: suite.chainId, stuckAfter: "400ms" });
      const pinFile = join(setup.dir, "hsm.pin");
      await writeFile(pinFile, `${token.pin}\n`, { mode: 0o600 });
      const yaml = (await readFile(setup.configFile, "utf8")).replace(
        `signer: { key_env: ${RELAYER_KEY_ENV} }`,
        `signer:\n    kind: pkcs11\n    module: ${token.module}\n    token: ${token.label}\n    key_label: settler\n    pin_file: hsm.pin`,
      );
      await writeFile(setup.configFile, yaml);
      const logs: string[] = [];
      const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
      const runtime = await startSettlement(loadRelayerConfig(setup.configFile), { logger, env: {} });
      const store = new SettlementStore(redis, prefix, "local");
      try {
        const chain = runtime.chains[0]!;
        expect(chain.signer).to.equal(hsm.address);
        const submit = async (receipts: Receipt[]) => {
          const built = await buildBatch(receipts, Date.now(), callsFromOf(receipts[0]!.startTime, 3600), {
            chain: "local",
            chainId: suite.chainId,
            router: suite.routerAddress,
            usageBucket: 3600,
            registry: { providerId: (name: string) => ({ openai: 1, anthropic: 2, groq: 3 })[name] ?? 0, modelId: (name: string) => ({ "gpt-4-turbo": 1, "claude-3-opus": 2, "mixtral-8x22b": 3 })[name] ?? 0 },
          });
          const path = await runtime.archive.write("local", built.file.batchId, built.bytes);
          const amount = built.charges.reduce((sum, c) => sum + c.amount, 0n);
          await chain.settler!.submit({ batchId: built.file.batchId, path, cid: built.cid, receiptsRoot: built.file.receiptsRoot, callsFrom: built.file.callsFrom, rows: built.charges.length, receipts: receipts.length, amount: amount.toString() });
          for (const charge of built.charges) charged.set(charge.user, (charged.get(charge.user) ?? 0n) + charge.amount);
          return { batchId: built.file.batchId, amount };
        };
        const charged = new Map<string, bigint>();
        const [a, b] = suite.payers.map((p) => p.address) as [string, string];
        const before = [await suite.router.balanceOf(a), await suite.router.balanceOf(b)];

        // two batches mined at once
        const one = await submit([receipt(a, "openai", "gpt-4-turbo", 1000), receipt(b, "groq", "mixtral-8x22b", 2000)]);
        const two = await submit([receipt(a, "anthropic", "claude-3-opus", 500)]);
        await until("two batches final", async () => (await store.get(one.batchId))?.state === "final" && (await store.get(two.batchId))?.state === "final");

        // a third one stuck in the mempool: the settler replaces it with higher fees, signed again by the token
        await node.rpc("evm_setAutomine", [false]);
        const three = await submit([receipt(b, "openai", "gpt-4-turbo", 3000)]);
        const bumped = await until("a replacement", async () => {
          const record = await store.get(three.batchId);
          return record !== null && record.txs.length >= 2 ? record : null;
        });
        expect(signerOfRecord(bumped)).to.equal(hsm.address);
        expect(BigInt(bumped.txs[1]!.maxFeePerGas)).to.be.greaterThan(BigInt(bumped.txs[0]!.maxFeePerGas));
        await node.rpc("evm_setAutomine", [true]);
        await node.rpc("evm_mine", []);
        await until("the third batch final", async () => (await store.get(three.batchId))?.state === "final");

        for (const { batchId } of [one, two, three]) {
          const record = (await store.get(batchId))!;
          expect((await suite.provider.getTransaction(record.txHash!))!.from).to.equal(hsm.address);
          expect(Number((await suite.router.batchInfo(batchId)).status)).to.equal(1);
        }
        const third = (await store.get(three.batchId))!;
        expect(third.txs.map((tx) => tx.hash)).to.include(third.txHash); // whichever broadcast was mined, it is one of ours
        // each payer charged exactly once for its calls
        expect(charged.get(a)).to.be.greaterThan(0n);
        expect(await suite.router.balanceOf(a)).to.equal(before[0]! - charged.get(a)!);
        expect(await suite.router.balanceOf(b)).to.equal(before[1]! - charged.get(b)!);
        expect(await suite.provider.getTransactionCount(hsm.address)).to.equal(3); // nonces 0, 1, 2: no gap, nothing twice

        // a reload (SIGHUP) opens a new session on the token; the old one is closed once the settler switched
        const previous = (chain.settler as unknown as { wallet: DeviceSigner }).wallet;
        const [reloaded] = await runtime.reloadKeys(loadRelayerConfig(setup.configFile));
        expect(reloaded).to.include({ ok: true, active: hsm.address });
        const four = await submit([receipt(a, "groq", "mixtral-8x22b", 100)]);
        await until("the fourth batch final", async () => (await store.get(four.batchId))?.state === "final");
        // keys change between passes: the pass that was running at the reload may have settled the fourth batch itself
        await until("the settler applied the reloaded keys", async () => (chain.settler as unknown as { wallet: DeviceSigner }).wallet !== previous);
        let closed: unknown;
        await previous.signDigest(new Uint8Array(32)).catch((error: unknown) => (closed = error));
        expect((closed as Error | undefined)?.message).to.include("the signer is closed");
        expect(await suite.provider.getTransactionCount(hsm.address)).to.equal(4);
      } finally {
        await runtime.stop();
        await rm(setup.dir, { recursive: true, force: true });
      }
      expect(logs.join("\n")).to.include(`pkcs11 token \\"${token.label}\\", key \\"settler\\"`);
      expectNoSecrets([], [token.pin, token.soPin], logs);
    });
  });
});
