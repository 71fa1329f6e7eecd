/**
 * The AWS KMS signer through the real AWS SDK (@aws-sdk/client-kms) against a local stand-in that speaks the KMS
 * JSON API (test/helpers/kms-standin.ts: no KMS is reachable here) with real secp256k1 keys, returning DER
 * signatures with a high `s` as KMS may: the signer normalizes them, recovers `v`, and its transactions are
 * accepted by a `hardhat node`: a transfer, and batches settled by the settlement runtime configured with
 * `kind: aws_kms`. Wrong keys are refused with the fix.
 */
import { readFile, rm, writeFile } from "node:fs/promises";

import { expect } from "chai";
import { Signature, SigningKey, computeAddress, getBytes, keccak256, parseEther, toUtf8Bytes, verifyTypedData } from "ethers";
import type { Redis } from "ioredis";
import { pino } from "pino";

import { buildBatch } from "../../../relayer/batcher/batch-file.js";
import { callsFromOf } from "../../../relayer/batcher/usage-bucket.js";
import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { openAwsKmsSigner } from "../../../relayer/keys/signers/aws-kms.js";
import { loadConfiguredSigner, SECP256K1_N, SignerError, SigningKeyError } from "../../../relayer/keys/signers/index.js";
import { startSettlement } from "../../../relayer/settler/runtime.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import type { Receipt } from "../../../relayer/queue/index.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { startKmsStandin, type KmsStandin } from "../../helpers/kms-standin.js";
import { receipt } from "../../helpers/receipts.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { RELAYER_KEY_ENV, writeRelayerConfig } from "../../helpers/relayer-process.js";

const CREDENTIALS = { AWS_ACCESS_KEY_ID: "AKIDSTANDINEXAMPLE", AWS_SECRET_ACCESS_KEY: "stand-in-secret-key-not-a-real-one", AWS_EC2_METADATA_DISABLED: "true" };

describe("AWS KMS signer (local KMS stand-in)", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let kms: KmsStandin;
  let redis: Redis;
  let prefix: string;
  const saved: Record<string, string | undefined> = {};

  before(async function () {
    // the SDK's default credential chain reads them from the environment, as on a host with AWS_* variables
    for (const [name, value] of Object.entries(CREDENTIALS)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 2 });
    kms = await startKmsStandin({ region: "eu-west-1" });
    redis = testRedis();
    prefix = uniquePrefix("kms");
  });
  after(async function () {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await dropPrefix(redis, prefix);
    redis?.disconnect();
    await kms?.close();
    await node?.stop();
  });

  it("reads the address from GetPublicKey and normalizes KMS's high-s DER signatures (v recovered)", async function () {
    const key = kms.addKey();
    const signer = await openAwsKmsSigner({ keyId: key.arn, region: kms.region, endpoint: kms.url });
    try {
      expect(signer.address).to.equal(key.address);
      kms.highS = true;
      const before = kms.highSigned;
      for (let i = 0; i < 4; i++) {
        const digest = getBytes(keccak256(toUtf8Bytes(`kms digest ${i}`)));
        const raw = await signer.device.signDigest(digest);
        expect(raw.s > SECP256K1_N / 2n, "the stand-in answered with a high s").to.equal(true);
        const signature = await signer.signDigest(digest);
        expect(BigInt(signature.s)).to.equal(SECP256K1_N - raw.s);
        expect(computeAddress(SigningKey.recoverPublicKey(digest, signature))).to.equal(key.address);
      }
      expect(kms.highSigned - before).to.equal(8);
      const typed = {
        domain: { name: "AgentGPT", version: "1", chainId: suite.chainId, verifyingContract: suite.routerAddress },
        types: { Note: [{ name: "text", type: "string" }] },
        value: { text: "signed in KMS" },
      };
      expect(verifyTypedData(typed.domain, typed.types, typed.value, await signer.signTypedData(typed.domain, typed.types, typed.value))).to.equal(key.address);
      // the SDK signed its requests (SigV4, KMS in the configured region) and spoke the KMS JSON protocol
      const sign = kms.requests.find((r) => r.target === "TrentService.Sign")!;
      expect(sign.contentType).to.equal("application/x-amz-json-1.1");
      expect(sign.authorization).to.include(`/eu-west-1/kms/aws4_request`);
      expect(sign.body).to.include({ KeyId: key.arn, MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" });
    } finally {
      await signer.close();
    }
  });

  it("sends a transfer the chain accepts (ethers' sendTransaction through the KMS signer)", async function () {
    const key = kms.addKey();
    await (await suite.admin.sendTransaction({ to: key.address!, value: parseEther("1") })).wait();
    const signer = await openAwsKmsSigner({ keyId: key.arn, region: kms.region, endpoint: kms.url });
    try {
      kms.highS = true;
      const to = suite.payers[1]!.address;
      const balance = await suite.provider.getBalance(to, await suite.provider.getBlockNumber());
      const sent = await signer.connect(suite.provider).sendTransaction({ to, value: 12_345n });
      const mined = await sent.wait();
      expect(mined?.status).to.equal(1);
      expect((await suite.provider.getTransaction(sent.hash))!.from).to.equal(key.address);
      expect(await suite.provider.getBalance(to, mined!.blockNumber)).to.equal(balance + 12_345n);
      expect(BigInt(Signature.from((await suite.provider.getTransaction(sent.hash))!.signature).s) <= SECP256K1_N / 2n).to.equal(true);
    } finally {
      await signer.close();
    }
  });

  it("settles batches on chain through the settlement runtime with kind: aws_kms", async function () {
    const key = kms.addKey();
    await (await suite.router.grantRole(RELAYER_ROLE, key.address!)).wait();
    await (await suite.admin.sendTransaction({ to: key.address!, value: parseEther("10") })).wait();
    const setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: suite.payers.map((p) => p.address), chainId: suite.chainId });
    await writeFile(
      setup.configFile,
      (await readFile(setup.configFile, "utf8")).replace(
        `signer: { key_env: ${RELAYER_KEY_ENV} }`,
        `signer:\n    kind: aws_kms\n    key_id: ${key.arn}\n    region: ${kms.region}\n    endpoint: ${kms.url}`,
      ),
    );
    kms.highS = true;
    const logs: string[] = [];
    const runtime = await startSettlement(loadRelayerConfig(setup.configFile), { logger: pino({ level: "info" }, { write: (line: string) => void logs.push(line) }), env: {} });
    const store = new SettlementStore(redis, prefix, "local");
    try {
      const chain = runtime.chains[0]!;
      expect(chain.signer).to.equal(key.address);
      const [a, b] = suite.payers.map((p) => p.address) as [string, string];
      const before = await suite.router.balanceOf(a);
      const ids: string[] = [];
      let chargedA = 0n;
      for (const receipts of [[receipt(a, "openai", "gpt-4-turbo", 1000)], [receipt(b, "groq", "mixtral-8x22b", 900), receipt(a, "anthropic", "claude-3-opus", 400)]] as Receipt[][]) {
        const built = await buildBatch(receipts, Date.now(), callsFromOf(receipts[0]!.startTime, 3600), {
          chain: "local",
          chainId: suite.chainId,
          router: suite.routerAddress,
          usageBucket: 3600,
          registry: { providerId: (name: string) => ({ openai: 1, anthropic: 2, groq: 3 })[name] ?? 0, modelId: (name: string) => ({ "gpt-4-turbo": 1, "claude-3-opus": 2, "mixtral-8x22b": 3 })[name] ?? 0 },
        });
        const path = await runtime.archive.write("local", built.file.batchId, built.bytes);
        const amount = built.charges.reduce((sum, c) => sum + c.amount, 0n);
        chargedA += built.charges.filter((c) => c.user === a).reduce((sum, c) => sum + c.amount, 0n);
        await chain.settler!.submit({ batchId: built.file.batchId, path, cid: built.cid, receiptsRoot: built.file.receiptsRoot, callsFrom: built.file.callsFrom, rows: built.charges.length, receipts: receipts.length, amount: amount.toString() });
        ids.push(built.file.batchId);
      }
      const deadline = Date.now() + 30_000;
      while (!(await Promise.all(ids.map(async (id) => (await store.get(id))?.state === "final"))).every(Boolean)) {
        if (Date.now() > deadline) throw new Error(`batches not final: ${JSON.stringify(await store.active())}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const id of ids) {
        const record = (await store.get(id))!;
        expect((await suite.provider.getTransaction(record.txHash!))!.from).to.equal(key.address);
        expect(Number((await suite.router.batchInfo(id)).status)).to.equal(1);
      }
      expect(await suite.router.balanceOf(a)).to.equal(before - chargedA);
      expect(kms.requests.filter((r) => r.target === "TrentService.Sign" && r.body.KeyId === key.arn).length).to.be.greaterThanOrEqual(2);
    } finally {
      await runtime.stop();
      await rm(setup.dir, { recursive: true, force: true });
    }
    expect(logs.join("\n")).to.not.include(CREDENTIALS.AWS_SECRET_ACCESS_KEY);
  });

  it("refuses a key that is not secp256k1, and a key KMS does not have, naming the fix", async function () {
    const p256 = kms.addKey("ECC_NIST_P256");
    let wrong: unknown;
    await openAwsKmsSigner({ keyId: p256.arn, region: kms.region, endpoint: kms.url }).catch((error: unknown) => (wrong = error));
    expect(wrong).to.be.instanceOf(SignerError);
    expect((wrong as Error).message).to.include("is ECC_NIST_P256: Ethereum needs an ECC_SECG_P256K1 key");
    let missing: unknown;
    const config = { kind: "aws_kms" as const, passwordEnv: "UNUSED", awsKms: { keyId: "alias/nope", region: kms.region, endpoint: kms.url } };
    await loadConfiguredSigner(config).catch((error: unknown) => (missing = error));
    expect(missing).to.be.instanceOf(SigningKeyError);
    expect((missing as Error).message).to.include("settler signer: aws_kms key alias/nope: GetPublicKey failed (NotFoundException");
  });
});
