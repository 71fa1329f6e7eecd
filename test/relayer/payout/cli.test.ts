/**
 * The money loop's own commands on a real local node, as a payer and a provider's payee type them: `agentgpt payer
 * ...` funds and limits a payer (a permit when the allowance is short), `agentgpt provider release` releases every
 * batch whose window closed (anyone may, twice is harmless), `agentgpt provider withdraw` pays the payee. Each
 * refusal names what is short and the fix. Results are read back from the chain with plain ethers.
 */
import { config, expect } from "chai";
import { JsonRpcProvider, JsonRpcSigner, Wallet } from "ethers";

import { loadDeployment } from "../../../relayer/chain/index.js";
import { buildRowsTree } from "../../../relayer/batcher/rows-tree.js";
import { AGPTToken__factory } from "../../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../../typechain-types/factories/AutoPayLLM__factory.js";
import { deployToNode, runCommand, startLocalNode, type CommandResult, type LocalNode } from "../../deploy/local-node.js";

config.truncateThreshold = 0;

const AGPT = 10n ** 18n;
/** hardhat node accounts (public test keys): #0 the deployer, #1 the relayer, #5 a payer, #6 openai's payee */
const KEYS = {
  deployer: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  relayer: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  payer: "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  payee: "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
};

describe("agentgpt payer and provider (CLI against a hardhat node)", function () {
  let node: LocalNode;
  let provider: JsonRpcProvider;
  let routerAddress: string;
  const payer = new Wallet(KEYS.payer);
  const payee = new Wallet(KEYS.payee);

  before(async function () {
    node = await startLocalNode();
    const deployed = await deployToNode(node);
    expect(deployed.code, deployed.stdout + deployed.stderr).to.equal(0);
    provider = new JsonRpcProvider(node.url);
    const deployment = await loadDeployment(31337, { deploymentsDir: node.deploymentsDir });
    routerAddress = deployment.addresses.autoPayLLM;
    // Governance's part, done as the timelock (impersonated on this development node): a provider and a price.
    const timelock = deployment.addresses.timelock;
    await node.rpc("hardhat_impersonateAccount", [timelock]);
    await node.rpc("hardhat_setBalance", [timelock, "0x56BC75E2D63100000"]);
    const asTimelock = AutoPayLLM__factory.connect(routerAddress, new JsonRpcSigner(provider, timelock));
    // The localhost parameters register openai (paid to account #10) at deploy: pay it to this test's payee instead.
    const openai = await asTimelock.providerId("openai");
    if (openai === 0n) await (await asTimelock.registerProvider("openai", payee.address)).wait();
    else await (await asTimelock.setProviderPayee(openai, payee.address)).wait();
    await (await asTimelock.setModelPrice("gpt-4-turbo", (12n * AGPT) / 100n)).wait();
    // The payer gets tokens from the deployer (who holds the supply on localhost).
    const agpt = AGPTToken__factory.connect(deployment.addresses.agpt, new Wallet(KEYS.deployer, provider));
    await (await agpt.transfer(payer.address, 1_000n * AGPT)).wait();
  });

  after(async function () {
    await node?.stop();
  });

  function agentgpt(args: string[], key: string): Promise<CommandResult> {
    return runCommand(process.execPath, ["bin/agentgpt.mjs", ...args], { ...node.env, AGENTGPT_PRIVATE_KEY: key });
  }

  function ok(result: CommandResult): string {
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    return result.stdout;
  }

  function refused(result: CommandResult): string {
    expect(result.code, result.stdout + result.stderr).to.equal(2);
    return result.stderr;
  }

  it("funds a payer: deposit by permit, approve, cap, auto-refill, withdraw; refusals name the shortfall and the fix", async function () {
    expect(ok(await agentgpt(["payer", "balance"], KEYS.payer))).to.match(/deposit\s+0 AGPT[\s\S]*wallet\s+1000 AGPT/);
    expect(refused(await agentgpt(["payer", "deposit", "--amount", "5000 AGPT"], KEYS.payer))).to.contain(
      "holds 1000 AGPT in its wallet, less than the 5000 AGPT to deposit",
    );
    expect(refused(await agentgpt(["payer", "deposit", "--amount", "100 AGPT", "--no-permit"], KEYS.payer))).to.contain(
      'run `agentgpt payer approve --amount "100 AGPT"` first',
    );
    expect(refused(await agentgpt(["payer", "deposit", "--amount", "100"], KEYS.payer))).to.match(/--amount: "100" is not an amount; write e.g. "500 AGPT"/);
    expect(refused(await agentgpt(["payer", "deposit", "--amount", "1 USDC"], KEYS.payer))).to.contain("is in USDC, but this relayer settles in AGPT");
    expect(ok(await agentgpt(["payer", "deposit", "--amount", "300 AGPT"], KEYS.payer))).to.contain("Deposited 300 AGPT with a permit");
    expect(ok(await agentgpt(["payer", "approve", "--amount", "200 AGPT"], KEYS.payer))).to.contain("Allowance set to 200 AGPT");
    ok(await agentgpt(["payer", "deposit", "--amount", "50 AGPT", "--no-permit"], KEYS.payer));
    ok(await agentgpt(["payer", "cap", "--daily", "40 AGPT"], KEYS.payer));
    ok(await agentgpt(["payer", "refill", "--threshold", "20 AGPT", "--amount", "100 AGPT"], KEYS.payer));
    expect(refused(await agentgpt(["payer", "withdraw", "--amount", "1000 AGPT"], KEYS.payer))).to.contain(
      "has 350 AGPT deposited (escrowed charges are not part of it), less than 1000 AGPT",
    );
    ok(await agentgpt(["payer", "withdraw", "--amount", "10 AGPT"], KEYS.payer));
    const router = AutoPayLLM__factory.connect(routerAddress, provider);
    const account = await router.accountOf(payer.address);
    expect([account.deposit_, account.dailyCap, account.refillThreshold, account.refillAmount]).to.deep.equal([
      340n * AGPT,
      40n * AGPT,
      20n * AGPT,
      100n * AGPT,
    ]);
    // anyone may look at a payer without a key
    expect(ok(await runCommand(process.execPath, ["bin/agentgpt.mjs", "payer", "balance", "--address", payer.address], node.env))).to.match(
      /deposit\s+340 AGPT[\s\S]*daily cap\s+40 AGPT[\s\S]*below 20 AGPT, pull at least 100 AGPT/,
    );
  });

  it("sets the router's allowance by a signed permit (payer permit), then deposits against it without another permit", async function () {
    const agpt = AGPTToken__factory.connect((await loadDeployment(31337, { deploymentsDir: node.deploymentsDir })).addresses.agpt, provider);
    const router = AutoPayLLM__factory.connect(routerAddress, provider);
    const nonce = await agpt.nonces(payer.address);
    const before = await router.accountOf(payer.address);
    expect(refused(await agentgpt(["payer", "permit", "--amount", "250 AGPT", "--deadline", "0s"], KEYS.payer))).to.contain("--deadline");
    expect(refused(await agentgpt(["payer", "permit", "--amount", "250"], KEYS.payer))).to.match(/--amount: "250" is not an amount/);
    expect(ok(await agentgpt(["payer", "permit", "--amount", "250 AGPT", "--deadline", "10m"], KEYS.payer))).to.match(
      /Allowance set to 250 AGPT by permit \(signed until \S+\) in 0x[0-9a-f]{64}/,
    );
    expect(await agpt.allowance(payer.address, routerAddress)).to.equal(250n * AGPT);
    expect(await agpt.nonces(payer.address)).to.equal(nonce + 1n);
    ok(await agentgpt(["payer", "deposit", "--amount", "100 AGPT", "--no-permit"], KEYS.payer));
    expect((await router.accountOf(payer.address)).deposit_).to.equal(before.deposit_ + 100n * AGPT);
    expect(await agpt.allowance(payer.address, routerAddress)).to.equal(150n * AGPT);
  });

  it("gets a provider paid: release after the window (anyone, twice harmless), then the payee withdraws", async function () {
    const router = AutoPayLLM__factory.connect(routerAddress, new Wallet(KEYS.relayer, provider));
    const charge = { user: payer.address, provider: 1, model: 1, tokens: 100_000n, amount: 12n * AGPT };
    const receipt = (await (await router.settleBatch(`0x${"11".repeat(32)}`, [charge], `0x${"22".repeat(32)}`, "bafy-test")).wait())!;
    const rejected = receipt.logs.map((log) => router.interface.parseLog(log)).filter((e) => e?.name === "RowRejected");
    expect(rejected.map((e) => Number(e!.args.reason))).to.deep.equal([]);
    expect((await router.batchInfo(`0x${"11".repeat(32)}`)).rowsRoot).to.equal(buildRowsTree([charge]).root);

    expect(ok(await agentgpt(["provider", "release", "--dry-run"], KEYS.deployer))).to.contain("1 in their window");
    expect(refused(await agentgpt(["provider", "withdraw", "--provider", "openai"], KEYS.payee))).to.contain("openai has no credits yet");
    await node.rpc("evm_increaseTime", [3600]);
    await node.rpc("evm_mine", []);
    const released = ok(await agentgpt(["provider", "release"], KEYS.deployer));
    expect(released).to.contain("1 releasable now").and.to.contain("Released 12 AGPT to providers' credits");
    expect(ok(await agentgpt(["provider", "release"], KEYS.deployer))).to.contain("Escrowed batches: 0").and.to.contain("already released: 1");
    expect(ok(await agentgpt(["provider", "credits"], KEYS.deployer))).to.match(new RegExp(`openai\\s+${payee.address}\\s+12 AGPT`));

    expect(refused(await agentgpt(["provider", "withdraw", "--provider", "openai"], KEYS.deployer))).to.contain(`only openai's payee ${payee.address} may withdraw`);
    expect(refused(await agentgpt(["provider", "withdraw", "--provider", "mistral"], KEYS.payee))).to.contain('--provider "mistral" is not registered on this router (registered: openai');
    const before = await AGPTToken__factory.connect(await router.paymentToken(), provider).balanceOf(payee.address);
    expect(ok(await agentgpt(["provider", "withdraw", "--provider", "openai"], KEYS.payee))).to.contain("Withdrew 12 AGPT of openai's credits");
    expect(await AGPTToken__factory.connect(await router.paymentToken(), provider).balanceOf(payee.address)).to.equal(before + 12n * AGPT);
  });
});
