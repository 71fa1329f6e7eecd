/**
 * The signer section of the configuration: the three kinds (keystore, pkcs11, aws_kms) as the settler reads them,
 * older keystore configurations unchanged, and every mistake refused with the field and the fix. Plus the DER and
 * public-key parsing the device signers rely on, against encodings made by Node's crypto (not by our code).
 */
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { computeAddress, hexlify, SigningKey } from "ethers";

import { ConfigError, loadRelayerConfig, type SignerConfig } from "../../../relayer/config/index.js";
import { addressOfEcPoint, addressOfSpki, ethereumSignature, parseDerSignature, SECP256K1_N, SignatureFormatError } from "../../../relayer/keys/signers/index.js";

describe("signer configuration and device encodings", function () {
  let dir: string;
  before(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-signer-config-"));
  });
  after(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function signer(yaml: string): Promise<SignerConfig | undefined> {
    n += 1;
    const file = join(dir, `relayer-${n}.yaml`);
    await writeFile(file, `chains: { local: {} }\nsettler:\n  signer:\n${yaml.replace(/^/gm, "    ")}\n`);
    return loadRelayerConfig(file, { env: {} }).settler.signer;
  }
  async function refused(yaml: string): Promise<string> {
    try {
      await signer(yaml);
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("accepted");
  }

  it("reads a keystore signer as before (no kind), a pkcs11 signer and an aws_kms signer", async function () {
    expect(await signer("keystore: k.json\npassword_file: k.pw")).to.deep.equal({ keystore: "k.json", passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD", passwordFile: "k.pw", keyEnv: undefined, retiring: undefined });
    const hsm = await signer("kind: pkcs11\nmodule: /usr/lib/softhsm/libsofthsm2.so\ntoken: relayer\nkey_label: relayer-1\nretiring:\n  kind: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so\n  slot: 3\n  key_id: \"0x01ab\"\n  pin_file: old.pin");
    expect(hsm!.kind).to.equal("pkcs11");
    expect(hsm!.pkcs11).to.deep.equal({ module: "/usr/lib/softhsm/libsofthsm2.so", token: "relayer", slot: undefined, keyLabel: "relayer-1", keyId: undefined, pinEnv: "AGENTGPT_PKCS11_PIN" });
    expect(hsm!.retiring!.pkcs11).to.deep.equal({ module: "/usr/lib/softhsm/libsofthsm2.so", token: undefined, slot: 3, keyLabel: undefined, keyId: "0x01ab", pinEnv: "AGENTGPT_PKCS11_PIN", pinFile: "old.pin" });
    const kms = await signer("kind: aws_kms\nkey_id: alias/relayer\nregion: eu-west-1\nendpoint: https://kms.eu-west-1.amazonaws.com");
    expect(kms!.awsKms).to.deep.equal({ keyId: "alias/relayer", region: "eu-west-1", endpoint: "https://kms.eu-west-1.amazonaws.com" });
  });

  it("refuses each mistake naming the field and the fix", async function () {
    expect(await refused("kind: pkcs11\ntoken: relayer\nkey_label: k")).to.include("settler.signer.module: module: the HSM vendor's PKCS#11 library");
    expect(await refused("kind: pkcs11\nmodule: /m.so\nkey_label: k")).to.include("give the token either by token: (its label) or by slot: (its slot id)");
    expect(await refused("kind: pkcs11\nmodule: /m.so\ntoken: t")).to.include("key_label: (the key's label) or key_id: (its CKA_ID in hex)");
    expect(await refused("kind: pkcs11\nmodule: /m.so\ntoken: t\nkey_id: xyz")).to.include("key_id: the key's CKA_ID in hex");
    expect(await refused("kind: pkcs11\nmodule: /m.so\ntoken: t\nkey_id: 0x01ab")).to.include('write it in quotes, e.g. key_id: "0x01ab"');
    expect(await refused("kind: pkcs11\nmodule: /m.so\ntoken: t\nkey_label: k\npin_env: PIN\npin_file: p")).to.include("give the user PIN either by pin_env: (a variable) or by pin_file: (a file), not both");
    expect(await refused("kind: pkcs11\nmodule: /m.so\ntoken: t\nkey_label: k\nkeystore: k.json")).to.include("settler.signer.keystore: keystore: is not a setting of a pkcs11 signer");
    expect(await refused("kind: aws_kms\nregion: eu-west-1")).to.include("settler.signer.key_id: key_id: the KMS key");
    expect(await refused("kind: aws_kms\nkey_id: k\nregion: Europe")).to.include("an AWS region such as eu-west-1");
    expect(await refused("keystore: k.json\nmodule: /m.so")).to.include("module: is not a setting of a keystore signer (kind: keystore, the default)");
    expect(await refused("kind: vault\nkeystore: k.json")).to.include("settler.signer.kind");
    expect(await refused("kind: aws_kms\nkey_id: k\nregion: eu-west-1\nretiring: { kind: aws_kms, key_id: k, region: eu-west-1 }")).to.include("it cannot be the same key as the signer");
  });

  it("parses DER signatures and public keys as Node's crypto encodes them, and refuses other curves", function () {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const key = new SigningKey(hexlify(Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url")));
    expect(addressOfSpki(spki)).to.equal(computeAddress(key.publicKey));
    const point = Buffer.from(key.publicKey.slice(2), "hex");
    expect(addressOfEcPoint(Buffer.concat([Buffer.from([0x04, 0x41]), point]))).to.equal(computeAddress(key.publicKey)); // DER OCTET STRING
    expect(addressOfEcPoint(point)).to.equal(computeAddress(key.publicKey)); // a module handing out the bare point
    const p256 = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({ type: "spki", format: "der" });
    expect(() => addressOfSpki(p256)).to.throw(SignatureFormatError, "not an EC key on secp256k1");

    // a DER signature from Node (SHA-256 of the message as the digest), with a high s made from it
    const message = Buffer.from("hello");
    const digest = createHash("sha256").update(message).digest();
    const der = sign("sha256", message, { key: privateKey, dsaEncoding: "der" });
    const { r, s } = parseDerSignature(der);
    const low = ethereumSignature(digest, { r, s }, computeAddress(key.publicKey));
    const high = ethereumSignature(digest, { r, s: SECP256K1_N - s }, computeAddress(key.publicKey));
    expect(high.serialized).to.equal(low.serialized);
    expect(BigInt(low.s) <= SECP256K1_N / 2n).to.equal(true);
    expect(() => ethereumSignature(digest, { r, s }, "0x000000000000000000000000000000000000dEaD")).to.throw(SignatureFormatError, "does not recover to");
    expect(() => parseDerSignature(Buffer.concat([der, Buffer.from([0])]))).to.throw(SignatureFormatError);
    expect(() => ethereumSignature(digest, { r: 0n, s }, computeAddress(key.publicKey))).to.throw(SignatureFormatError, "out of range");
  });
});
