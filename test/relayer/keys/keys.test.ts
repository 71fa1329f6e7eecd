/**
 * `agentgpt keys new` and `keys show` as processes against a real `hardhat node`: a keystore that opens with its
 * password to the address printed, never written over, roles and pending nonces read from the chain, and neither
 * the private key nor the password in any output.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Wallet, parseEther } from "ethers";

import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { agentgpt } from "../backup/helpers.js";
import { expectNoSecrets } from "./secrets.js";

const PASSWORD = "correct horse battery staple 42";

describe("agentgpt keys new / show", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let dir: string;

  before(async function () {
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 1 });
    dir = await mkdtemp(join(tmpdir(), "agentgpt-keys-"));
  });
  after(async function () {
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates an encrypted keystore, shows its roles and pending nonces, and prints no secret", async function () {
    const out = join(dir, "keys", "relayer.json");
    const created = await agentgpt(["keys", "new", "--out", out], { AGENTGPT_KEYSTORE_PASSWORD: PASSWORD });
    expect(created.code, created.stderr).to.equal(0);
    const address = /address (0x[0-9a-fA-F]{40})/.exec(created.stdout)?.[1];
    expect(address).to.be.a("string");
    expect(created.stdout).to.include(`created ${out}`);
    expect((await stat(out)).mode & 0o777).to.equal(0o600);
    expect((await stat(join(dir, "keys"))).mode & 0o777).to.equal(0o700);
    const wallet = await Wallet.fromEncryptedJson(await readFile(out, "utf8"), PASSWORD);
    expect(wallet.address).to.equal(address);

    const show = () => agentgpt(["keys", "show", "--keystore", out, "--rpc", node.url, "--router", suite.routerAddress]);
    const before = await show();
    expect(before.code, before.stderr).to.equal(0);
    expect(before.stdout).to.include(`key ${address}`);
    expect(before.stdout).to.include("roles on AutoPayLLM: none");
    expect(before.stdout).to.include("gas balance: 0.0");
    expect(before.stdout).to.include("nonces: 0 mined, nothing pending");

    await (await suite.router.grantRole(RELAYER_ROLE, address!)).wait();
    await (await suite.admin.sendTransaction({ to: address!, value: parseEther("1") })).wait();
    await node.rpc("evm_setAutomine", [false]);
    try {
      const signer = wallet.connect(suite.provider);
      await signer.sendTransaction({ to: address!, value: 1n, nonce: 0, gasLimit: 21_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n });
      await signer.sendTransaction({ to: address!, value: 1n, nonce: 1, gasLimit: 21_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n });
      const after = await show();
      expect(after.code, after.stderr).to.equal(0);
      expect(after.stdout).to.include("roles on AutoPayLLM: RELAYER_ROLE");
      expect(after.stdout).to.include("gas balance: 1.0");
      expect(after.stdout).to.include("nonces: 0 mined, 2 pending (nonces 0 to 1)");
      expectNoSecrets([created, before, after], [wallet.privateKey, PASSWORD]);
    } finally {
      await node.rpc("evm_setAutomine", [true]);
      await node.rpc("evm_mine", []);
    }
  });

  it("never writes over a file, and names the variable or the fix when the password is missing or weak", async function () {
    const existing = join(dir, "existing.json");
    await writeFile(existing, "keep me");
    const over = await agentgpt(["keys", "new", "--out", existing], { AGENTGPT_KEYSTORE_PASSWORD: PASSWORD });
    expect(over.code).to.equal(2);
    expect(over.stderr).to.include(`${existing} exists already: keystores are never overwritten; choose another --out`);
    expect(await readFile(existing, "utf8")).to.equal("keep me");

    const missing = await agentgpt(["keys", "new", "--out", join(dir, "a.json"), "--password-env", "MY_KEY_PASSWORD"], { MY_KEY_PASSWORD: "" });
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.include("set MY_KEY_PASSWORD to the keystore password (there is no terminal to ask on)");

    const weak = await agentgpt(["keys", "new", "--out", join(dir, "b.json")], { AGENTGPT_KEYSTORE_PASSWORD: "hunter2" });
    expect(weak.code).to.equal(2);
    expect(weak.stderr).to.include("the password in $AGENTGPT_KEYSTORE_PASSWORD has 7 characters: use at least 12");
    expectNoSecrets([weak], ["hunter2"]);

    const noKey = await agentgpt(["keys", "show"]);
    expect(noKey.code).to.equal(2);
    expect(noKey.stderr).to.include("keys show: pass --keystore <file>, --pkcs11 ... or --kms-key <id> (one key), or --config <relayer.yaml> (the settler's keys)");
  });
});
