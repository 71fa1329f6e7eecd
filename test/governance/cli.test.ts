/**
 * A full governance vote on a real local node through the commands a user types: `npm run deploy`, then
 * `node bin/agentgpt.mjs governance ...` for every step, each checked for what it prints when a step cannot
 * happen yet. The result is read back from the chain with plain ethers.
 */
import { expect } from "chai";
import { JsonRpcProvider } from "ethers";

import { loadDeployment } from "../../relayer/chain/index.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { deployToNode, runCommand, startLocalNode, type CommandResult, type LocalNode } from "../deploy/local-node.js";

/** Hardhat node account #0's well-known key (the deployer, holding the AGPT supply). Public test data. */
const ACCOUNT_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const AGPT = 10n ** 18n;
const DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"; // account #0
const PAYEE = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"; // account #6

describe("agentgpt governance (CLI against a hardhat node)", function () {
  this.timeout(600_000); // the deploy in `before` may first rebuild (see deployToNode)
  let node: LocalNode;

  before(async function () {
    node = await startLocalNode();
    const deployed = await deployToNode(node);
    expect(deployed.code, deployed.stdout + deployed.stderr).to.equal(0);
  });

  after(async function () {
    await node?.stop();
  });

  async function agentgpt(args: string[], env: NodeJS.ProcessEnv = node.env): Promise<CommandResult> {
    return runCommand(process.execPath, ["bin/agentgpt.mjs", "governance", ...args], env);
  }

  function ok(result: CommandResult): string {
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    return result.stdout;
  }

  function refused(result: CommandResult): string {
    expect(result.code, result.stdout + result.stderr).to.equal(2);
    return result.stderr;
  }

  it("changes a model's daily budget by a full vote: delegate, propose, vote, queue, execute", async function () {
    // Not delegated yet: no votes, so no proposal.
    expect(refused(await agentgpt(["propose-budget", "--model", "gpt-4-turbo", "--daily-limit", "500 AGPT"]))).to.match(
      /needs 1000 AGPT in votes to propose and has 0 AGPT\. It holds 100000000 AGPT but has not delegated/,
    );
    expect(ok(await agentgpt(["delegate"]))).to.contain("votes      100000000 AGPT");

    // The table's command (`propose-budget` above is its alias).
    const proposed = ok(await agentgpt(["propose", "model-budget", "--model", "gpt-4-turbo", "--daily-limit", "500 AGPT"]));
    const id = /^Proposal (\d+)$/m.exec(proposed)?.[1];
    expect(id, proposed).to.be.a("string");
    expect(proposed).to.contain('action 1  AutoPayLLM.setModelBudget("gpt-4-turbo", 500 AGPT)');
    expect(proposed).to.match(/state\s+Pending/);

    // Account #3 of the node holds no AGPT: it is told so. Account #0 votes with its key from the environment.
    expect(refused(await agentgpt(["vote", id!, "for", "--node-account", "3"]))).to.contain("holds no AGPT");
    const voted = await agentgpt(["vote", id!, "for"], { ...node.env, AGENTGPT_PRIVATE_KEY: ACCOUNT_0_KEY });
    expect(ok(voted)).to.match(/state\s+Active[\s\S]*quorum\s+4000000 AGPT \(for \+ abstain\): reached/);
    expect(voted.stdout).to.contain("($AGENTGPT_PRIVATE_KEY)");
    expect(voted.stdout + voted.stderr).to.not.contain(ACCOUNT_0_KEY.slice(2));

    // Voting still open: queue explains and says how far to go on a local node.
    const early = refused(await agentgpt(["queue", id!]));
    expect(early).to.contain("cannot be queued: it is Active");
    const blocks = /advance --blocks (\d+)/.exec(early)?.[1];
    expect(blocks, early).to.be.a("string");
    ok(await agentgpt(["advance", "--blocks", blocks!]));
    expect(ok(await agentgpt(["queue", id!]))).to.match(/state\s+Queued[\s\S]*In the timelock until/);

    // Still in the timelock: execute gives the ETA and the wait.
    const locked = refused(await agentgpt(["execute", id!]));
    expect(locked).to.contain("is still in the timelock until");
    const seconds = /advance --seconds (\d+)/.exec(locked)?.[1];
    expect(seconds, locked).to.be.a("string");
    ok(await agentgpt(["advance", "--seconds", seconds!]));
    expect(ok(await agentgpt(["execute", id!]))).to.match(/state\s+Executed/);

    const status = ok(await agentgpt(["status"]));
    expect(status).to.contain(`${id}  Executed   AutoPayLLM.setModelBudget("gpt-4-turbo", 500 AGPT)`);

    const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
    try {
      const { addresses } = await loadDeployment(31337, { deploymentsDir: node.deploymentsDir });
      const autoPay = AutoPayLLM__factory.connect(addresses.autoPayLLM, provider);
      const model = await autoPay.modelId("gpt-4-turbo");
      expect((await autoPay.modelInfo(model)).dailyLimit).to.equal(500n * AGPT);
    } finally {
      provider.destroy();
    }
  });

  it("--dry-run checks a change and prints the exact calls, sending nothing", async function () {
    const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true });
    try {
      const { addresses } = await loadDeployment(31337, { deploymentsDir: node.deploymentsDir });
      const [block, nonce] = [await provider.getBlockNumber(), await provider.getTransactionCount(DEPLOYER)];
      const dry = ok(
        await agentgpt(["propose", "provider-payee", "--provider", "openai", "--payee", PAYEE, "--dry-run"]),
      );
      expect(dry).to.contain("Dry run: nothing was sent.");
      expect(dry).to.contain(`target    AutoPayLLM ${addresses.autoPayLLM}`);
      expect(dry).to.contain("function  setProviderPayee(uint32,address)");
      expect(dry).to.match(/provider\s+uint32\s+1\n/);
      expect(dry).to.match(new RegExp(`payee\\s+address\\s+${PAYEE}`));
      const calldata = AutoPayLLM__factory.createInterface().encodeFunctionData("setProviderPayee", [1, PAYEE]);
      expect(dry).to.contain(`calldata  ${calldata}`);
      expect(dry).to.contain("simulated with eth_call from the timelock");
      expect(await provider.getBlockNumber()).to.equal(block);
      expect(await provider.getTransactionCount(DEPLOYER)).to.equal(nonce);
    } finally {
      provider.destroy();
    }
  });

  it("refuses a bad value before proposing, naming the option", async function () {
    const [unknown, registered, bucket] = await Promise.all([
      agentgpt(["propose", "provider-payee", "--provider", "mistral", "--payee", PAYEE]),
      agentgpt(["propose", "provider-register", "--name", "openai", "--payee", PAYEE, "--dry-run"]),
      agentgpt(["propose", "usage-bucket", "--seconds", "7000", "--dry-run"]),
    ]);
    expect(refused(unknown)).to.contain('--provider "mistral": unknown provider (6 registered)');
    expect(refused(registered)).to.contain('--name "openai": already registered as provider 1');
    expect(refused(bucket)).to.contain("--seconds 7000: must divide a day");
  });

  it("names the field and the fix for bad input", async function () {
    const [price, window, network] = await Promise.all([
      agentgpt(["propose-price", "--model", "gpt-4-turbo", "--max-price", "0.12 USD/1k tokens"]),
      agentgpt(["propose-dispute-window", "--seconds", "3600"]),
      agentgpt(["status", "--network", "polygonAmoy", "--rpc", node.url]),
    ]);
    expect(refused(price)).to.contain('--max-price: "0.12 USD/1k tokens" is in USD, but this relayer settles in AGPT');
    expect(refused(window)).to.contain("the timelock delay (120 s) must stay longer than the dispute window (3600 s)");
    expect(refused(network)).to.contain("serves chain 31337, not polygonAmoy (80002)");
  });
});
