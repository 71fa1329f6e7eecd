/**
 * The Ignition modules' graph variants on the in-process network: an existing ERC-20 as the payment token, and
 * no relayer or guardian named (the roles stay ungranted until governance grants them).
 */
import { expect } from "chai";
import { network } from "hardhat";

import { ARBITER_ROLE, DEFAULT_ADMIN_ROLE, PAUSER_ROLE, RELAYER_ROLE } from "../../relayer/chain/index.js";
import { PARAMETERS, deployGovernedSuite } from "../governance/fixture.js";

const connection = await network.create();
const { ethers } = connection;

describe("Ignition modules (deploy/modules)", function () {
  describe("AgentGPT with an existing payment token", function () {
    it("settles in that ERC-20, votes in a fresh AGPT, and still hands over every admin power", async function () {
      const usdc = await ethers.deployContract("MockERC20", ["USD Coin", "USDC", 6]);
      const g = await deployGovernedSuite(connection, { paymentToken: "existing" }, {
        ...PARAMETERS,
        AutoPayLLM: { disputeWindow: 3600, paymentToken: await usdc.getAddress(), disputeBond: 5_000_000n },
      });
      expect(await g.suite.autoPayLLM.paymentToken()).to.equal(await usdc.getAddress());
      expect(g.suite.paymentUnit).to.deep.equal({ symbol: "USDC", decimals: 6 });
      expect(await g.suite.governor.token()).to.equal(await g.suite.agpt.getAddress());
      expect(await g.suite.agpt.symbol()).to.equal("AGPT");
      expect(await g.suite.autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, g.deployer.address)).to.equal(false);
      expect(await g.suite.autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, await g.suite.timelock.getAddress())).to.equal(true);
      expect(await g.suite.autoPayLLM.disputeBond()).to.equal(5_000_000n); // in USDC units: 5 USDC
    });
  });

  describe("AgentGPT with the oracle adapter", function () {
    it("deploys UsageOracle under the timelock's admin, its verification set, as AutoPayLLM's arbiter and verifier", async function () {
      const router = await ethers.deployContract("MockFunctionsRouter");
      const g = await deployGovernedSuite(connection, { oracle: true }, {
        ...PARAMETERS,
        UsageOracle: { functionsRouter: await router.getAddress(), requestTimeout: 1800, maxAttempts: 4, toleranceBps: 50 },
      });
      const oracleAddress = g.suite.deployment.addresses.usageOracle!;
      const oracle = await ethers.getContractAt("UsageOracle", oracleAddress);
      expect(await oracle.settlement()).to.equal(await g.suite.autoPayLLM.getAddress());
      expect(await g.suite.autoPayLLM.hasRole(ARBITER_ROLE, oracleAddress)).to.equal(true);
      expect(await g.suite.autoPayLLM.verifier()).to.equal(oracleAddress);
      expect([await oracle.requestTimeout(), await oracle.maxAttempts(), await oracle.toleranceBps()]).to.deep.equal([
        1800n,
        4n,
        50n,
      ]);
      expect(await g.suite.autoPayLLM.hasRole(ARBITER_ROLE, g.deployer.address)).to.equal(false);
      expect(await oracle.hasRole(DEFAULT_ADMIN_ROLE, await g.suite.timelock.getAddress())).to.equal(true);
      expect(await oracle.hasRole(DEFAULT_ADMIN_ROLE, g.deployer.address)).to.equal(false);
      expect(await g.suite.autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, g.deployer.address)).to.equal(false);
    });
  });

  describe("AgentGPT with the RelayerKeyRotator", function () {
    it("grants the rotator the router's admin role and adopts the relayer before the hand-over, then the timelock is its admin", async function () {
      const [, relayer, , , , , rotatorKey] = await ethers.getSigners();
      const g = await deployGovernedSuite(connection, { rotator: true }, {
        ...PARAMETERS,
        RelayerKeyRotator: { rotator: rotatorKey!.address, maxKeys: 2, minInterval: 600, adopt: relayer!.address },
      });
      const router = g.suite.autoPayLLM;
      const granted = await router.queryFilter(router.filters.RoleGranted(DEFAULT_ADMIN_ROLE));
      const rotatorAddress = granted.map((e) => e.args[1] as string).find((a) => a !== g.deployer.address && a !== ethers.getAddress(g.suite.deployment.addresses.timelock))!;
      const rotator = await ethers.getContractAt("RelayerKeyRotator", rotatorAddress);
      expect(await router.hasRole(DEFAULT_ADMIN_ROLE, rotatorAddress)).to.equal(true);
      expect(await rotator.isManaged(relayer!.address)).to.equal(true);
      expect(await rotator.hasRole(await rotator.ROTATOR_ROLE(), rotatorKey!.address)).to.equal(true);
      expect([await rotator.maxKeys(), await rotator.minInterval()]).to.deep.equal([2n, 600n]);
      expect(await rotator.hasRole(DEFAULT_ADMIN_ROLE, g.suite.deployment.addresses.timelock)).to.equal(true);
      expect(await rotator.hasRole(DEFAULT_ADMIN_ROLE, g.deployer.address)).to.equal(false);
      expect(await router.hasRole(DEFAULT_ADMIN_ROLE, g.deployer.address)).to.equal(false);
      // the rotator key rotates without a vote
      const next = ethers.Wallet.createRandom().address;
      await rotator.connect(rotatorKey!).addKey(next);
      expect(await router.hasRole(RELAYER_ROLE, next)).to.equal(true);
      await rotator.connect(rotatorKey!).revokeKey(relayer!.address, false);
      expect(await router.hasRole(RELAYER_ROLE, relayer!.address)).to.equal(false);
    });
  });

  describe("AgentGPT with a sequencer-uptime feed", function () {
    it("sets the feed before the governor checks the timelock against window + grace, and refuses a grace too long", async function () {
      const feed = await ethers.deployContract("MockAggregator", [0]);
      const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
      await feed.setRound(1, 0, now - 3600n, now - 3600n, 1);
      const feedAddress = await feed.getAddress();
      const withGrace = (grace: number) => ({
        ...PARAMETERS,
        AutoPayLLM: { disputeWindow: 3600, sequencerUptimeFeed: feedAddress, sequencerGracePeriod: grace },
      });
      // Fixture timings: window 3600 s, timelock 7200 s.
      const g = await deployGovernedSuite(connection, { sequencerFeed: true }, withGrace(3599));
      expect(await g.suite.autoPayLLM.sequencerUptimeFeed()).to.equal(feedAddress);
      expect(await g.suite.autoPayLLM.sequencerGracePeriod()).to.equal(3599n);
      let error: unknown;
      try {
        await deployGovernedSuite(connection, { sequencerFeed: true, relayer: false }, withGrace(3600));
      } catch (caught) {
        error = caught;
      }
      expect(String(error)).to.contain("AgentGovernorDelayNotAboveDisputeWindow");
    });
  });

  describe("AgentGPT without a relayer or guardian", function () {
    it("grants neither role to anyone at deployment", async function () {
      const g = await deployGovernedSuite(connection, { relayer: false, guardian: false });
      const { autoPayLLM } = g.suite;
      const filter = autoPayLLM.filters.RoleGranted;
      const granted = await autoPayLLM.queryFilter(filter(), 0);
      const roles = granted.map((event) => event.args.role);
      expect(roles).to.not.include(RELAYER_ROLE);
      expect(roles).to.not.include(PAUSER_ROLE);
      expect(await autoPayLLM.hasRole(RELAYER_ROLE, g.relayer.address)).to.equal(false);
    });
  });
});
