/**
 * relayer/governance/settings.ts: every governed setting is one table entry. For a representative set (price,
 * provider, dispute window and bond, oracle source and subscription, a role grant, a relayer key rotation,
 * resolveDispute) a proposal goes through the real AgentGovernor and Timelock (deployed by the production Ignition
 * modules, with the UsageOracle on the repository's MockFunctionsRouter) and the setting is live afterwards; values
 * the contracts or the chain would refuse are refused before anything is proposed, naming the option.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { expect } from "chai";
import { AbiCoder, encodeBytes32String, keccak256 } from "ethers";
import { network } from "hardhat";

import { buildRowsTree, type Charge } from "../../relayer/batcher/rows-tree.js";
import { networkByName, SETTLEMENT_ROLES } from "../../relayer/chain/index.js";
import {
  GovernanceError,
  SECRETS_ROLE,
  SETTINGS,
  buildSetting,
  describeActions,
  settingByName,
  type GovernanceClient,
  type SettingEnv,
  type SettingValues,
} from "../../relayer/governance/index.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { REPO } from "../deploy/local-node.js";
import { AGPT, PARAMETERS, TIMELOCK_DELAY, VOTING_DELAY, VOTING_PERIOD, deployGovernedSuite, type GovernedSuite } from "./fixture.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture, mine } = networkHelpers;
const LOCAL = { ...networkByName("localhost"), name: "hardhat" };
const SOURCE_FILE = join(REPO, "oracle", "functions", "provider-usage.js");

async function fixture(): Promise<GovernedSuite> {
  const router = await ethers.deployContract("MockFunctionsRouter");
  const g = await deployGovernedSuite(connection, { oracle: true }, {
    ...PARAMETERS,
    UsageOracle: { functionsRouter: await router.getAddress() },
  });
  await (await g.suite.agpt.delegate(g.deployer.address)).wait();
  return g;
}

async function envOf(client: GovernanceClient): Promise<SettingEnv> {
  return { suite: client.suite, ctx: client.actionContext, network: LOCAL };
}

/** Builds the setting's calls and walks them through propose, vote, queue and execute. */
async function pass(g: GovernedSuite, setting: string, values: SettingValues): Promise<void> {
  const owner = await g.client(g.deployer);
  const actions = await buildSetting(settingByName(setting), values, await envOf(owner));
  const { view } = await owner.propose(actions);
  await mine(VOTING_DELAY);
  await owner.vote(view.id, "for");
  await mine(VOTING_PERIOD);
  await owner.queue(view.id);
  await networkHelpers.time.increase(TIMELOCK_DELAY);
  const executed = await owner.execute(view.id);
  expect(executed.view.state).to.equal("Executed");
}

/** The error a setting gives before anything is proposed (no proposal is created). */
async function refused(g: GovernedSuite, setting: string, values: SettingValues): Promise<string> {
  const owner = await g.client(g.deployer);
  const before = await g.suite.governor.proposalCount();
  try {
    await owner.draft(await buildSetting(settingByName(setting), values, await envOf(owner)));
  } catch (error) {
    if (!(error instanceof GovernanceError)) throw error;
    expect(error.code).to.be.oneOf(["INVALID_ACTION", "WINDOW_NOT_COVERED"]);
    expect(await g.suite.governor.proposalCount()).to.equal(before);
    return error.message;
  }
  throw new Error(`${setting} ${JSON.stringify(values)} was not refused`);
}

describe("relayer/governance settings (through the real Governor and Timelock)", function () {
  this.timeout(120_000);

  it("has one entry per setting, with unique names and legacy aliases", function () {
    const names = SETTINGS.map((s) => s.name);
    expect(new Set(names).size).to.equal(names.length);
    for (const name of ["provider-register", "provider-payee", "model-price", "model-budget", "dispute-window",
      "dispute-bond", "dispute-timeouts", "usage-bucket", "verifier", "sequencer-feed", "timelock-delay", "role",
      "relayer-key", "resolve-dispute", "oracle-source", "oracle-usage-api", "oracle-functions", "oracle-secrets",
      "oracle-price-feed", "oracle-verification", "relayer-rotator"]) {
      expect(names).to.include(name);
    }
    expect(settingByName("propose-budget").name).to.equal("model-budget");
    expect(() => settingByName("nope")).to.throw(GovernanceError, "the settings are provider-register");
  });

  it("registers a provider, changes its payee and prices a model", async function () {
    const g = await loadFixture(fixture);
    const { autoPayLLM } = g.suite;
    await pass(g, "provider-register", { name: "openai", payee: g.stranger.address });
    expect(await autoPayLLM.providerId("openai")).to.equal(1n);
    await pass(g, "provider-payee", { provider: "openai", payee: g.holder.address });
    expect((await autoPayLLM.providerInfo(1))[1]).to.equal(g.holder.address);
    await pass(g, "model-price", { model: "gpt-4-turbo", maxPrice: "0.12 AGPT/1k tokens" });
    const model = await autoPayLLM.modelId("gpt-4-turbo");
    expect((await autoPayLLM.modelInfo(model))[1]).to.equal((12n * AGPT) / 100n);
    await pass(g, "model-budget", { model: "gpt-4-turbo", dailyLimit: "500 AGPT" });
    expect((await autoPayLLM.modelInfo(model))[2]).to.equal(500n * AGPT);

    // Before proposing: a provider registered twice, an unknown one, the same payee, an unpriced model's budget.
    expect(await refused(g, "provider-register", { name: "openai", payee: g.holder.address })).to.contain(
      '--name "openai": already registered as provider 1',
    );
    expect(await refused(g, "provider-payee", { provider: "mistral", payee: g.holder.address })).to.contain(
      '--provider "mistral": unknown provider (1 registered)',
    );
    expect(await refused(g, "provider-payee", { provider: "openai", payee: g.holder.address })).to.contain("already paid to");
    expect(await refused(g, "model-budget", { model: "claude", dailyLimit: "5 AGPT" })).to.contain('--model "claude": unknown model');
    expect(await refused(g, "model-price", { model: "gpt-4-turbo", maxPrice: "0.12 USD/1k tokens" })).to.contain(
      "--max-price:",
    );
    expect(await refused(g, "model-price", { model: "gpt-4-turbo", maxPrice: `${1n << 128n}n` })).to.contain(
      "--max-price: " + `${1n << 128n}` + " token units is out of range",
    );
  });

  it("sets the dispute window, bond and timeouts, and refuses values out of the contract's bounds", async function () {
    const g = await loadFixture(fixture);
    const { autoPayLLM } = g.suite;
    await pass(g, "dispute-window", { seconds: "1800" });
    expect(await autoPayLLM.disputeWindow()).to.equal(1800n);
    await pass(g, "dispute-bond", { amount: "5 AGPT", bps: "100" });
    expect(await autoPayLLM.disputeBond()).to.equal(5n * AGPT);
    expect(await autoPayLLM.disputeBondBps()).to.equal(100n);
    await pass(g, "dispute-timeouts", { arbiter: "7200", governance: "86400" });
    expect([await autoPayLLM.arbiterTimeout(), await autoPayLLM.governanceTimeout()]).to.deep.equal([7200n, 86400n]);

    expect(await refused(g, "dispute-window", { seconds: "7200" })).to.contain(
      "the timelock delay (7200 s) must stay longer than the dispute window (7200 s)",
    );
    expect(await refused(g, "dispute-window", { seconds: "30" })).to.contain("60 to 2592000 seconds");
    expect(await refused(g, "dispute-bond", { bps: "6000" })).to.contain("--bps 6000: must be 0 to 5000 basis points");
    expect(await refused(g, "dispute-bond", { amount: "0 AGPT" })).to.contain("an oracle answers disputes here");
    expect(await refused(g, "dispute-timeouts", { arbiter: "7200", governance: "3600" })).to.contain(
      "--governance 3600: governance could not judge a dispute in time",
    );
  });

  it("configures the oracle: source, usage API, Functions subscription and secrets", async function () {
    const g = await loadFixture(fixture);
    const oracle = UsageOracle__factory.connect(g.suite.deployment.addresses.usageOracle!, ethers.provider);
    await pass(g, "oracle-source", { file: SOURCE_FILE });
    expect(await oracle.source()).to.equal(await readFile(SOURCE_FILE, "utf8"));
    await pass(g, "oracle-usage-api", { url: "https://usage.example.com" });
    expect(await oracle.usageApiUrl()).to.equal("https://usage.example.com");
    await pass(g, "oracle-functions", { subscription: "42", don: "fun-arbitrum-sepolia-1", callbackGas: "300000" });
    expect(await oracle.subscriptionId()).to.equal(42n);
    expect(await oracle.donId()).to.equal(encodeBytes32String("fun-arbitrum-sepolia-1"));
    expect(await oracle.callbackGasLimit()).to.equal(300_000n);
    await pass(g, "oracle-secrets", { slot: "0", version: "1712" });
    expect([await oracle.secretsSlotId(), await oracle.secretsVersion()]).to.deep.equal([0n, 1712n]);

    expect(await refused(g, "oracle-functions", { subscription: "0", don: "fun-arbitrum-sepolia-1", callbackGas: "300000" })).to.contain(
      "--subscription 0: must be 1 to",
    );
    expect(await refused(g, "oracle-functions", { subscription: "42", don: "fun", callbackGas: "400000" })).to.contain(
      "--callback-gas 400000: must be 237000 to 300000 gas",
    );
    expect(await refused(g, "oracle-usage-api", { url: "https://usage.example.com/?api_key=abc" })).to.contain(
      "the API key belongs in the DON secrets",
    );
    expect(await refused(g, "oracle-source", { file: join(REPO, "no-such-file.js") })).to.contain("cannot read it (ENOENT)");
  });

  it("grants a role, rotates the relayer key, and refuses a grant already held", async function () {
    const g = await loadFixture(fixture);
    const { autoPayLLM } = g.suite;
    await pass(g, "role", { role: "pauser", account: g.stranger.address });
    expect(await autoPayLLM.hasRole(SETTLEMENT_ROLES.PAUSER, g.stranger.address)).to.equal(true);
    await pass(g, "role", { role: "SECRETS", account: g.holder.address });
    const oracle = UsageOracle__factory.connect(g.suite.deployment.addresses.usageOracle!, ethers.provider);
    expect(await oracle.hasRole(SECRETS_ROLE, g.holder.address)).to.equal(true);

    await pass(g, "relayer-key", { add: g.minnow.address, revoke: g.relayer.address });
    expect(await autoPayLLM.hasRole(SETTLEMENT_ROLES.RELAYER, g.minnow.address)).to.equal(true);
    expect(await autoPayLLM.hasRole(SETTLEMENT_ROLES.RELAYER, g.relayer.address)).to.equal(false);

    expect(await refused(g, "role", { role: "PAUSER", account: g.stranger.address })).to.contain("already holds PAUSER_ROLE");
    expect(await refused(g, "role", { role: "OWNER", account: g.stranger.address })).to.contain("RELAYER, ARBITER, PAUSER");
    expect(await refused(g, "relayer-key", { revoke: g.relayer.address })).to.contain("does not hold RELAYER_ROLE");
  });

  it("grants the RelayerKeyRotator its power, sets its limits and takes the power back, each by one proposal", async function () {
    const g = await loadFixture(fixture);
    const { autoPayLLM, timelock } = g.suite;
    const rotator = await ethers.deployContract("RelayerKeyRotator", [
      await autoPayLLM.getAddress(),
      await timelock.getAddress(),
      g.minnow.address,
      2,
      3600,
    ]);
    const address = await rotator.getAddress();
    const ADMIN = await autoPayLLM.DEFAULT_ADMIN_ROLE();
    expect(await refused(g, "relayer-rotator", { rotator: address })).to.contain("--grant, --revoke or --max-keys");
    expect(await refused(g, "relayer-rotator", { rotator: g.stranger.address, grant: true })).to.contain("not a RelayerKeyRotator");
    expect(await refused(g, "relayer-rotator", { rotator: address, revoke: true })).to.contain("holds no rotation power");

    await pass(g, "relayer-rotator", { rotator: address, grant: true });
    expect(await autoPayLLM.hasRole(ADMIN, address)).to.equal(true);
    await (await rotator.connect(g.minnow).addKey(g.holder.address)).wait(); // no vote needed from here on
    expect(await autoPayLLM.hasRole(SETTLEMENT_ROLES.RELAYER, g.holder.address)).to.equal(true);

    await pass(g, "relayer-rotator", { rotator: address, maxKeys: "3", minInterval: "600" });
    expect([await rotator.maxKeys(), await rotator.minInterval()]).to.deep.equal([3n, 600n]);
    expect(await refused(g, "relayer-rotator", { rotator: address, maxKeys: "9" })).to.contain("--max-keys 9");

    await pass(g, "relayer-rotator", { rotator: address, revoke: true });
    expect(await autoPayLLM.hasRole(ADMIN, address)).to.equal(false);
    await expect(rotator.connect(g.minnow).revokeKey(g.holder.address, true)).to.be.revertedWithCustomError(autoPayLLM, "AccessControlUnauthorizedAccount");
  });

  it("resolves a dispute by governance, and refuses an overbilled count above the held tokens", async function () {
    const g = await loadFixture(fixture);
    const { autoPayLLM, agpt } = g.suite;
    await pass(g, "provider-register", { name: "openai", payee: g.stranger.address });
    await pass(g, "model-price", { model: "gpt-4-turbo", maxPrice: "0.12 AGPT/1k tokens" });
    const payer = g.holder;
    await (await agpt.connect(payer).approve(await autoPayLLM.getAddress(), 1_000n * AGPT)).wait();
    await (await autoPayLLM.connect(payer).deposit(100n * AGPT)).wait();
    const charge: Charge = { user: payer.address, provider: 1, model: 1, tokens: 10_000n, amount: 12n * AGPT / 10n };
    const batchId = keccak256(AbiCoder.defaultAbiCoder().encode(["string"], ["settings-batch"]));
    await (await autoPayLLM.connect(g.relayer).settleBatch(batchId, [charge], batchId, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")).wait();
    const tree = buildRowsTree([charge]);
    const receipt = (await (await autoPayLLM.connect(payer).dispute([{ batchId, index: 0, charge, proof: tree.proof(0) }])).wait())!;
    const disputeId = receipt.logs.map((log) => autoPayLLM.interface.parseLog(log)).find((e) => e?.name === "DisputeOpened")!.args
      .disputeId as string;

    expect(await refused(g, "resolve-dispute", { dispute: disputeId, overbilled: "10001" })).to.contain(
      "--overbilled 10001: the dispute holds 10000 tokens",
    );
    const deposit = await autoPayLLM.balanceOf(payer.address);
    await pass(g, "resolve-dispute", { dispute: disputeId, overbilled: "5000" });
    const info = await autoPayLLM.disputeInfo(disputeId);
    expect(info.status).to.equal(2n); // Resolved
    expect(info.refund).to.equal(6n * AGPT / 10n);
    expect(await autoPayLLM.balanceOf(payer.address)).to.be.greaterThan(deposit);
    expect(await refused(g, "resolve-dispute", { dispute: disputeId, overbilled: "0" })).to.contain("the dispute is already resolved");
  });

  it("describes the exact calls for a dry run: target, function, decoded arguments, calldata", async function () {
    const g = await loadFixture(fixture);
    const owner = await g.client(g.deployer);
    const actions = await buildSetting(settingByName("relayer-key"), { add: g.minnow.address, revoke: g.relayer.address }, await envOf(owner));
    const lines = describeActions(owner.actionContext, actions).join("\n");
    expect(lines).to.contain(`target    AutoPayLLM ${g.suite.deployment.addresses.autoPayLLM}`);
    expect(lines).to.contain("function  grantRole(bytes32,address)");
    expect(lines).to.contain("function  revokeRole(bytes32,address)");
    expect(lines).to.match(new RegExp(`role\\s+bytes32\\s+RELAYER_ROLE \\(${SETTLEMENT_ROLES.RELAYER}\\)`));
    expect(lines).to.contain(`calldata  ${actions[0]!.calldata}`);
  });
});
