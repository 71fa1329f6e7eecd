/**
 * `settler.rotation.key`: keystore (as before), pkcs11 (keys generated in a token: its settings validated, each error
 * naming the field), aws_kms refused with the reason and the way out.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";

import { ConfigError, loadRelayerConfig, type RotationConfig } from "../../relayer/config/index.js";

describe("settler.rotation.key configuration", function () {
  let dir: string;
  before(async function () {
    dir = await mkdtemp(join(tmpdir(), "agentgpt-rotation-config-"));
  });
  after(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function rotation(yaml: string): Promise<RotationConfig | undefined> {
    n += 1;
    const file = join(dir, `relayer-${n}.yaml`);
    const body = `every: 24h\nrotator: { key_env: ROTATOR_KEY }\n${yaml}`;
    await writeFile(file, `chains: { local: {} }\nsettler:\n  signer: { key_env: RELAYER_KEY }\n  rotation:\n${body.replace(/^/gm, "    ")}\n`);
    return loadRelayerConfig(file, { env: {} }).settler.rotation;
  }
  async function refused(yaml: string): Promise<string> {
    try {
      await rotation(yaml);
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("accepted");
  }

  it("reads key: keystore as before and key: pkcs11 with its token settings", async function () {
    const keystore = (await rotation("keys_dir: ./k\npassword_file: ./k.pw"))!;
    expect(keystore.key).to.equal("keystore");
    expect(keystore.keysDir).to.equal("./k");
    expect(keystore.pkcs11).to.equal(undefined);
    const hsm = (await rotation("key: pkcs11\npkcs11:\n  module: /usr/lib/softhsm/libsofthsm2.so\n  token: relayer\n  pin_file: ./hsm.pin"))!;
    expect(hsm.key).to.equal("pkcs11");
    expect(hsm.pkcs11).to.deep.equal({ module: "/usr/lib/softhsm/libsofthsm2.so", token: "relayer", slot: undefined, pinEnv: "AGENTGPT_PKCS11_PIN", pinFile: "./hsm.pin", labelPrefix: "agentgpt-relayer-" });
    const bySlot = (await rotation("key: pkcs11\npkcs11: { module: /m.so, slot: 2, pin_env: HSM_PIN, label_prefix: r- }"))!;
    expect(bySlot.pkcs11).to.include({ slot: 2, pinEnv: "HSM_PIN", labelPrefix: "r-" });
  });

  it("refuses a pkcs11 rotation without its token, with keystore settings, or with bad token settings, naming the field", async function () {
    expect(await refused("key: pkcs11")).to.match(/settler\.rotation\.pkcs11.*key: pkcs11 needs pkcs11:/s);
    expect(await refused("key: pkcs11\nkeys_dir: ./k\npkcs11: { module: /m.so, token: t }")).to.match(/keys_dir.*setting of key: keystore/s);
    expect(await refused("key: pkcs11\npassword_env: PW\npkcs11: { module: /m.so, token: t }")).to.match(/password_env.*setting of key: keystore/s);
    expect(await refused("key: pkcs11\npkcs11: { module: /m.so }")).to.match(/pkcs11\.token.*token: \(its label\) or by slot:/s);
    expect(await refused("key: pkcs11\npkcs11: { module: /m.so, token: t, slot: 1 }")).to.match(/not both or neither/);
    expect(await refused("key: pkcs11\npkcs11: { token: t }")).to.match(/pkcs11\.module/);
    expect(await refused("key: pkcs11\npkcs11: { module: /m.so, token: t, pin_env: P, pin_file: f }")).to.match(/pin_file.*not both/s);
    expect(await refused("key: pkcs11\npkcs11: { module: /m.so, token: t, label_prefix: 'a b' }")).to.match(/label_prefix/);
    expect(await refused("pkcs11: { module: /m.so, token: t }")).to.match(/pkcs11.*only with key: pkcs11/s);
  });

  it("refuses key: aws_kms with the reason and the way out", async function () {
    const message = await refused("key: aws_kms");
    expect(message).to.match(/settler\.rotation\.key/);
    expect(message).to.include("KMS keys are created by the operator");
    expect(message).to.include("key: pkcs11");
  });
});
