/**
 * The deployment as a user runs it: `npm run deploy -- --network localhost` against a `hardhat node` on loopback,
 * then everything read back over JSON-RPC with plain ethers (not through the code under test).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { readDeploymentParameters } from "@nomicfoundation/hardhat-ignition/helpers";
import { expect } from "chai";
import { JsonRpcProvider, ZeroAddress } from "ethers";

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
    const [block, nonce] = [await provider.getBlockNumber(), await provider.getTransactionCount(DEPLOYER)];
    const second = await deployToNode(node);
    expect(second.code, second.stdout + second.stderr).to.equal(0);
    expect(second.stdout).to.contain("Nothing new to deploy");
    expect(await provider.getBlockNumber()).to.equal(block);
    expect(await provider.getTransactionCount(DEPLOYER)).to.equal(nonce);
    expect(await loadDeployment(31337, { deploymentsDir: node.deploymentsDir })).to.deep.equal(deployment);
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
