/**
 * The deployment as a user runs it: `npm run deploy -- --network localhost` against a `hardhat node` on loopback,
 * then everything read back over JSON-RPC with plain ethers (not through the code under test).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { readDeploymentParameters } from "@nomicfoundation/hardhat-ignition/helpers";
import { expect } from "chai";
import { AbiCoder, JsonRpcProvider, JsonRpcSigner, ZeroAddress, keccak256 } from "ethers";

import {
  CANCELLER_ROLE,
  DEFAULT_ADMIN_ROLE,
  EXECUTOR_ROLE,
  PAUSER_ROLE,
  PROPOSER_ROLE,
  RELAYER_ROLE,
  loadDeployment,
  type Deployment,
} from "../../relayer/chain/index.js";
import { checkParameters, type SuiteParameters } from "../../scripts/deploy/parameters.js";
import { AGPTToken__factory } from "../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { REPO, deployToNode, startLocalNode, type CommandResult, type LocalNode } from "./local-node.js";

const DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"; // hardhat node account #0

describe("npm run deploy -- --network localhost (hardhat node over JSON-RPC)", function () {
  this.timeout(600_000); // each run of the command may first rebuild (see deployToNode)
  let node: LocalNode;
  let first: CommandResult;
  let provider: JsonRpcProvider;
  let deployment: Deployment;
  let expected: SuiteParameters;

  before(async function () {
    node = await startLocalNode();
    provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
    const file = join(REPO, "deploy", "parameters", "localhost.json5");
    expected = checkParameters(await readDeploymentParameters(file), file);
    first = await deployToNode(node);
  });

  after(async function () {
    provider?.destroy();
    await node?.stop();
  });

  it("deploys the suite and writes the addresses where relayer/chain reads them", async function () {
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    deployment = await loadDeployment(31337, { deploymentsDir: node.deploymentsDir });
    for (const address of Object.values(deployment.addresses)) {
      expect(await provider.getCode(address)).to.not.equal("0x");
    }
  });

  it("sets every parameter of deploy/parameters/localhost.json5", async function () {
    const { addresses } = deployment;
    const agpt = AGPTToken__factory.connect(addresses.agpt, provider);
    const autoPay = AutoPayLLM__factory.connect(addresses.autoPayLLM, provider);
    const timelock = AgentTimelock__factory.connect(addresses.timelock, provider);
    const governor = AgentGovernor__factory.connect(addresses.governor, provider);
    expect(await agpt.totalSupply()).to.equal(expected.initialSupply);
    expect(await agpt.balanceOf(DEPLOYER)).to.equal(expected.initialSupply);
    expect(await autoPay.paymentToken()).to.equal(addresses.agpt);
    expect(await autoPay.disputeWindow()).to.equal(BigInt(expected.disputeWindow));
    expect(await governor.token()).to.equal(addresses.agpt);
    expect(await governor.timelock()).to.equal(addresses.timelock);
    expect(await governor.settlement()).to.equal(addresses.autoPayLLM);
    expect(await governor.votingDelay()).to.equal(BigInt(expected.votingDelay));
    expect(await governor.votingPeriod()).to.equal(BigInt(expected.votingPeriod));
    expect(await governor.proposalThreshold()).to.equal(expected.proposalThreshold);
    expect(await governor["quorumNumerator()"]()).to.equal(BigInt(expected.quorumPercent));
    expect(await governor.CLOCK_MODE()).to.equal("mode=blocknumber&from=default");
    expect(await timelock.getMinDelay()).to.equal(BigInt(expected.timelockDelay));
    expect(expected.timelockDelay).to.be.greaterThan(expected.disputeWindow);
    expect(await autoPay.usageBucket()).to.equal(BigInt(expected.usageBucket));
    expect(await autoPay.disputeBond()).to.equal(expected.disputeBond);
    expect(await autoPay.arbiterTimeout()).to.equal(BigInt(expected.arbiterTimeout));
    expect(await autoPay.governanceTimeout()).to.equal(BigInt(expected.governanceTimeout));
    expect([expected.usageBucket, expected.governanceTimeout]).to.deep.equal([60, 7200]);
  });

  it("prints what is live: settings, the supply's holders, and the default at the last deadline", function () {
    expect(first.stdout).to.match(/usage bucket\s+60 s/);
    expect(first.stdout).to.match(/governance timeout\s+7200 s \(then the charge stands\)/);
    expect(first.stdout).to.match(/deployer AGPT\s+100000000 AGPT/);
    expect(first.stdout).to.contain("proposal path 130 s + margin 3600 s");
  });

  it("registers the listed providers and models before the hand-over, and prints them", async function () {
    const autoPay = AutoPayLLM__factory.connect(deployment.addresses.autoPayLLM, provider);
    expect(expected.registry.providers.length).to.equal(6);
    for (const [i, listed] of expected.registry.providers.entries()) {
      expect(await autoPay.providerId(listed.name), listed.name).to.equal(BigInt(i + 1));
      expect((await autoPay.providerInfo(i + 1))[1]).to.equal(listed.payee);
    }
    for (const listed of expected.registry.models) {
      const [, price, budget] = await autoPay.modelInfo(await autoPay.modelId(listed.name));
      expect([price, budget], listed.name).to.deep.equal([listed.maxPricePer1k, listed.dailyBudget]);
    }
    expect(first.stdout).to.match(/Providers \(6\)\n\s+1\s+openai\s+payee 0xBcd4042DE499D14e55001CcbB24a551F3b954096/);
    expect(first.stdout).to.match(/gpt-4-turbo\s+0\.12 AGPT\/1k tokens, daily budget 10000 AGPT/);
    expect(first.stdout).to.match(/mixtral-8x22b\s+0\.0085 AGPT\/1k tokens, daily budget 1000 AGPT/);
  });

  it("ends ready to bill: a row of the seed's route settles with no further setup", async function () {
    const { addresses } = deployment;
    const [deployer, relayer, payer] = await Promise.all([0, 1, 5].map((i) => provider.getSigner(i)));
    const autoPay = AutoPayLLM__factory.connect(addresses.autoPayLLM, relayer!);
    const agpt = AGPTToken__factory.connect(addresses.agpt, deployer!);
    await (await agpt.transfer(await payer!.getAddress(), 100n * 10n ** 18n)).wait();
    await (await agpt.connect(payer!).approve(addresses.autoPayLLM, 100n * 10n ** 18n)).wait();
    await (await autoPay.connect(payer!).deposit(10n * 10n ** 18n)).wait();
    const charge = {
      user: await payer!.getAddress(),
      provider: Number(await autoPay.providerId("openai")),
      model: Number(await autoPay.modelId("gpt-4-turbo")),
      tokens: 1000n,
      amount: (12n * 10n ** 18n) / 100n, // 1k tokens at the seed's 0.12 AGPT/1k
    };
    const batchId = keccak256(AbiCoder.defaultAbiCoder().encode(["string"], ["ready-to-bill"]));
    const receipt = (await (
      await autoPay.settleBatch(batchId, [charge], batchId, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    ).wait())!;
    const events = receipt.logs.map((log) => autoPay.interface.parseLog(log)).filter((e) => e !== null);
    expect(events.map((e) => e!.name)).to.not.include("RowRejected");
    const settled = events.find((e) => e!.name === "BatchSettled")!;
    expect([settled.args.acceptedRows, settled.args.escrowed]).to.deep.equal([1n, charge.amount]);
  });

  it("wires every role, and the deployer keeps no admin power", async function () {
    const { addresses } = deployment;
    const autoPay = AutoPayLLM__factory.connect(addresses.autoPayLLM, provider);
    const timelock = AgentTimelock__factory.connect(addresses.timelock, provider);
    const roles: Array<[string, Promise<boolean>, boolean]> = [
      ["AutoPayLLM admin: timelock", autoPay.hasRole(DEFAULT_ADMIN_ROLE, addresses.timelock), true],
      ["AutoPayLLM admin: deployer", autoPay.hasRole(DEFAULT_ADMIN_ROLE, DEPLOYER), false],
      ["AutoPayLLM admin: governor", autoPay.hasRole(DEFAULT_ADMIN_ROLE, addresses.governor), false],
      ["AutoPayLLM relayer", autoPay.hasRole(RELAYER_ROLE, expected.relayer!), true],
      ["AutoPayLLM relayer: deployer", autoPay.hasRole(RELAYER_ROLE, DEPLOYER), false],
      ["AutoPayLLM pauser: guardian", autoPay.hasRole(PAUSER_ROLE, expected.guardian!), true],
      ["AutoPayLLM pauser: deployer", autoPay.hasRole(PAUSER_ROLE, DEPLOYER), false],
      ["timelock admin: itself", timelock.hasRole(DEFAULT_ADMIN_ROLE, addresses.timelock), true],
      ["timelock admin: deployer", timelock.hasRole(DEFAULT_ADMIN_ROLE, DEPLOYER), false],
      ["timelock proposer: governor", timelock.hasRole(PROPOSER_ROLE, addresses.governor), true],
      ["timelock canceller: governor", timelock.hasRole(CANCELLER_ROLE, addresses.governor), true],
      ["timelock executor: governor", timelock.hasRole(EXECUTOR_ROLE, addresses.governor), true],
      ["timelock executor: anyone", timelock.hasRole(EXECUTOR_ROLE, ZeroAddress), false],
    ];
    for (const role of [PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE]) {
      roles.push([`timelock ${role}: deployer`, timelock.hasRole(role, DEPLOYER), false]);
    }
    for (const [label, held, want] of roles) expect(await held, label).to.equal(want);
  });

  it("changes nothing on a second run", async function () {
    // Straight from the node: ethers caches the block number for a moment after a transaction (the test above).
    const head = async () => Number(await node.rpc<string>("eth_blockNumber"));
    const [block, nonce] = [await head(), await provider.getTransactionCount(DEPLOYER)];
    const second = await deployToNode(node);
    expect(second.code, second.stdout + second.stderr).to.equal(0);
    expect(second.stdout).to.contain("Nothing new to deploy");
    expect(await head()).to.equal(block);
    expect(await provider.getTransactionCount(DEPLOYER)).to.equal(nonce);
    expect(await loadDeployment(31337, { deploymentsDir: node.deploymentsDir })).to.deep.equal(deployment);
  });

  it("after the hand-over, refuses a provider or price the chain does not have, naming the governance command", async function () {
    const [block, nonce] = [await provider.getBlockNumber(), await provider.getTransactionCount(DEPLOYER)];
    const source = await readFile(join(REPO, "deploy", "parameters", "localhost.json5"), "utf8");
    const file = join(node.deploymentsDir, "drift.json5");
    await writeFile(
      file,
      source
        .replace('{ name: "deepinfra",', '{ name: "mistral", payee: "0xcd3B766CCDd6AE721141F452C550Ca635964ce71" },\n      { name: "deepinfra",')
        .replace('maxPrice: "0.12 AGPT/1k tokens"', 'maxPrice: "0.2 AGPT/1k tokens"'),
    );
    const drift = await deployToNode(node, { ...node.env, AGENTGPT_DEPLOY_PARAMETERS: file });
    expect(drift.code, drift.stdout + drift.stderr).to.equal(1);
    expect(drift.stderr).to.contain("already handed over to the timelock");
    expect(drift.stderr).to.contain(
      'AutoPayLLM.providers[5] "mistral" is not registered: propose it with `agentgpt governance propose ' +
        "provider-register --name mistral --payee 0xcd3B766CCDd6AE721141F452C550Ca635964ce71`",
    );
    expect(drift.stderr).to.contain(
      "AutoPayLLM.models[0].maxPrice: \"gpt-4-turbo\" has price cap 120000000000000000 token units on chain, the file " +
        "200000000000000000: propose it with `agentgpt governance propose model-price --model gpt-4-turbo --max-price 200000000000000000n`",
    );
    expect(await provider.getBlockNumber()).to.equal(block);
    expect(await provider.getTransactionCount(DEPLOYER)).to.equal(nonce);
  });

  it("after governance changed a price, a file with the live value re-runs without sending anything", async function () {
    // Governance's change, made as the timelock (impersonated on this development node).
    const { addresses } = deployment;
    await node.rpc("hardhat_impersonateAccount", [addresses.timelock]);
    await node.rpc("hardhat_setBalance", [addresses.timelock, "0x56BC75E2D63100000"]);
    const asTimelock = AutoPayLLM__factory.connect(addresses.autoPayLLM, new JsonRpcSigner(provider, addresses.timelock));
    await (await asTimelock.setModelPrice("gpt-4-turbo", (2n * 10n ** 18n) / 10n)).wait();
    await node.rpc("hardhat_stopImpersonatingAccount", [addresses.timelock]);

    // Straight from the node: ethers caches the block number for a moment after the transaction above.
    const head = async () => Number(await node.rpc<string>("eth_blockNumber"));
    const [block, nonce] = [await head(), await provider.getTransactionCount(DEPLOYER)];
    const source = await readFile(join(REPO, "deploy", "parameters", "localhost.json5"), "utf8");
    const file = join(node.deploymentsDir, "live.json5");
    await writeFile(file, source.replace('maxPrice: "0.12 AGPT/1k tokens"', 'maxPrice: "0.2 AGPT/1k tokens"'));
    const rerun = await deployToNode(node, { ...node.env, AGENTGPT_DEPLOY_PARAMETERS: file });
    expect(rerun.code, rerun.stdout + rerun.stderr).to.equal(0);
    expect(rerun.stdout).to.contain("Nothing new to deploy");
    expect(rerun.stdout).to.match(/gpt-4-turbo\s+0\.2 AGPT\/1k tokens/);
    expect(await head()).to.equal(block);
    expect(await provider.getTransactionCount(DEPLOYER)).to.equal(nonce);
  });

  it("refuses a bad provider or model before sending anything, naming the field", async function () {
    const block = await provider.getBlockNumber();
    const file = join(node.deploymentsDir, "bad-registry.json5");
    await writeFile(
      file,
      "{ AutoPayLLM: { disputeWindow: 60, disputeTimeouts: { arbiter: 3600, governance: 7200 }, " +
        'providers: [{ name: "openai", payee: "0xBcd4042DE499D14e55001CcbB24a551F3b954096" }, ' +
        '{ name: "openai", payee: "0x71bE63f3384f5fb98995898A86B02Fb2426c5788" }], ' +
        'models: [{ name: "gpt-4-turbo", maxPrice: "0.12 USD/1k tokens" }] }, ' +
        "Governance: { blockTime: 1, votingDelay: 0, votingPeriod: 10, timelockDelay: 120 } }",
    );
    const refused = await deployToNode(node, { ...node.env, AGENTGPT_DEPLOY_PARAMETERS: file });
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.contain('AutoPayLLM.providers[1].name: "openai" is listed twice');
    expect(refused.stderr).to.contain('AutoPayLLM.models[0].maxPrice: "0.12 USD/1k tokens" is in USD');
    expect(await provider.getBlockNumber()).to.equal(block);
  });

  it("refuses parameters that break the rules before sending anything", async function () {
    const block = await provider.getBlockNumber();
    const file = join(node.deploymentsDir, "unsafe.json5");
    await writeFile(file, "{ AutoPayLLM: { disputeWindow: 600 }, Governance: { blockTime: 1, timelockDelay: 600 } }");
    const refused = await deployToNode(node, { ...node.env, AGENTGPT_DEPLOY_PARAMETERS: file });
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.contain(
      "Governance.timelockDelay (600 s) must be longer than AutoPayLLM.disputeWindow (600 s)",
    );
    expect(await provider.getBlockNumber()).to.equal(block);

    // Governance must have time to judge a dispute: a timeout shorter than the proposal path plus the margin.
    await writeFile(
      file,
      "{ AutoPayLLM: { disputeTimeouts: { arbiter: 3600, governance: 3600 } }, " +
        "Governance: { blockTime: 1, votingDelay: 0, votingPeriod: 10, timelockDelay: 7200 } }",
    );
    const late = await deployToNode(node, { ...node.env, AGENTGPT_DEPLOY_PARAMETERS: file });
    expect(late.code).to.equal(1);
    expect(late.stderr).to.contain("AutoPayLLM.disputeTimeouts.governance (3600 s) leaves governance no time");
    expect(late.stderr).to.contain("raise disputeTimeouts.governance to at least 10810");
    expect(await provider.getBlockNumber()).to.equal(block);
  });
});
