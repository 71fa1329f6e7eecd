/**
 * P6 (issue #12): governance is honest from the first block. After a deploy with a public network's shipped
 * parameters (deploy/parameters/arbitrumSepolia.json5 and polygonAmoy.json5, deployed on the Hardhat network by
 * test/deploy/network-suite.ts exactly as `npm run deploy` does, the launch voters' placeholder replaced by a test
 * account), the deployer holds no AGPT and no votes (maxDeployerShare 0 %), the supply is where the file says, and
 * the listed holder alone can propose and reach the quorum. The deploy refuses, before anything is sent, a public
 * deployment that would leave the deployer more. Fails on the previous code, where the deployer kept the whole supply.
 */
import { expect } from "chai";
import { network } from "hardhat";

import { ParameterError, deployerKeeps } from "../../scripts/deploy/parameters.js";
import { inspectSuite } from "../../scripts/deploy/inspect-suite.js";
import { connectSuite } from "../../relayer/chain/index.js";
import { deployNetworkSuite, type NetworkSuite } from "./network-suite.js";

const connection = await network.create();
const AGPT = 10n ** 18n;

async function report(s: NetworkSuite, maxDeployerShareBps?: number) {
  const addresses = {
    agpt: await s.agpt.getAddress(),
    autoPayLLM: await s.autoPayLLM.getAddress(),
    timelock: await s.timelock.getAddress(),
    governor: await s.governor.getAddress(),
    ...(s.usageOracle === undefined ? {} : { usageOracle: await s.usageOracle.getAddress() }),
  };
  const suite = await connectSuite({ chainId: 31337, dir: "(in-memory)", addresses }, connection.ethers.provider);
  return inspectSuite(suite, {
    deployer: s.deployer.address,
    relayer: s.relayer.address,
    maxDeployerShareBps,
    blockTime: s.params.blockTime,
  });
}

describe("AGPT distribution at deployment (AGPTToken.allocations, maxDeployerShare)", function () {
  for (const name of ["arbitrumSepolia", "polygonAmoy"] as const) {
    it(`${name}: the deployer keeps no AGPT and no votes; the holder and the treasury hold the supply`, async function () {
      const s = await deployNetworkSuite(connection, name);
      const supply = await s.agpt.totalSupply();
      const holder = s.holders[0]!;
      const timelock = await s.timelock.getAddress();
      expect(s.params.maxDeployerShareBps).to.equal(0);
      expect(await s.agpt.balanceOf(s.deployer.address)).to.equal(0n);
      expect(await s.agpt.getVotes(s.deployer.address)).to.equal(0n);
      expect(await s.agpt.balanceOf(holder.address)).to.equal(10_000_000n * AGPT);
      expect(await s.agpt.balanceOf(timelock)).to.equal(90_000_000n * AGPT);
      expect((await s.agpt.balanceOf(holder.address)) + (await s.agpt.balanceOf(timelock))).to.equal(supply);

      // The listed holder, once delegated, can propose and alone reaches the quorum.
      await s.agpt.connect(holder).delegate(holder.address);
      await connection.networkHelpers.mine(1);
      const block = BigInt(await connection.ethers.provider.getBlockNumber()) - 1n;
      expect(await s.agpt.getVotes(holder.address)).to.be.gte(await s.governor.proposalThreshold());
      expect(await s.agpt.getVotes(holder.address)).to.be.gte(await s.governor.quorum(block));

      const { problems, settings } = await report(s, s.params.maxDeployerShareBps);
      expect(problems).to.deep.equal([]);
      expect(settings["deployer AGPT"]).to.equal("0 AGPT (votes 0 AGPT)");
      expect(settings["timelock AGPT"]).to.equal("90000000 AGPT");
    });
  }

  it("refuses a public deployment that would leave the deployer more than its share, before sending anything", async function () {
    const before = await connection.ethers.provider.getBlockNumber();
    let refusal = "";
    try {
      await deployNetworkSuite(connection, "polygonAmoy", {
        edit: (raw) => {
          raw.AGPTToken!.allocations = [{ to: "<launch voters' multisig>", amount: "10000000 AGPT" }];
          raw.AGPTToken!.maxDeployerShare = "1%";
        },
      });
    } catch (error) {
      if (!(error instanceof ParameterError)) throw error;
      refusal = error.message;
    }
    expect(refusal).to.match(/AGPTToken\.allocations leave the deployer 0x[0-9a-fA-F]{40} 90000000 AGPT of 100000000 AGPT, more than AGPTToken\.maxDeployerShare \(1 %\)/);
    // polygonAmoy has no oracle, so the harness deploys no MockFunctionsRouter either: not one block was made.
    expect(await connection.ethers.provider.getBlockNumber()).to.equal(before);
  });

  it("keeps up to the stated share when the file gives the deployer one, and the read-back flags more", async function () {
    const s = await deployNetworkSuite(connection, "polygonAmoy", {
      edit: (raw) => {
        raw.AGPTToken!.allocations = [
          { to: "<launch voters' multisig>", amount: "10000000 AGPT" },
          { to: "deployer", amount: "1000000 AGPT" },
          { to: "timelock", amount: "rest" },
        ];
        raw.AGPTToken!.maxDeployerShare = "1%";
      },
    });
    expect(deployerKeeps(s.params, s.deployer.address)).to.equal(1_000_000n * AGPT);
    expect(await s.agpt.balanceOf(s.deployer.address)).to.equal(1_000_000n * AGPT);
    expect(await s.agpt.balanceOf(await s.timelock.getAddress())).to.equal(89_000_000n * AGPT);
    expect((await report(s, 100)).problems).to.deep.equal([]);
    expect((await report(s, 99)).problems).to.deep.equal([
      "the deployer holds 1000000 AGPT (0 AGPT votes), more than its share (0.99 % = 990000 AGPT)",
    ]);
  });
});
