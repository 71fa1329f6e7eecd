import { readdir } from "node:fs/promises";
import { join } from "node:path";

import { readDeploymentParameters } from "@nomicfoundation/hardhat-ignition/helpers";
import { expect } from "chai";

import { GOVERNANCE_DEFAULTS } from "../../deploy/modules/Governance.js";
import { networkByName } from "../../relayer/chain/index.js";
import {
  ParameterError,
  checkDeployerShare,
  checkParameters,
  governanceMargin,
  proposalPathSeconds,
  toIgnition,
} from "../../scripts/deploy/parameters.js";
import { REPO } from "./local-node.js";
import { readNetworkParameters } from "./network-suite.js";

const AGPT = 10n ** 18n;
const RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const HOLDER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const ZERO = "0x0000000000000000000000000000000000000000";
/** The one required parameter: seconds per governance-clock tick. */
const G = { blockTime: 12 };

function refusal(raw: unknown): string {
  try {
    checkParameters(raw, "test.json5");
  } catch (error) {
    if (error instanceof ParameterError) return error.message;
    throw error;
  }
  throw new Error("expected a ParameterError");
}

describe("deployment parameters (scripts/deploy/parameters.ts)", function () {
  describe("the shipped files", function () {
    const dir = join(REPO, "deploy", "parameters");

    it("are valid for every network hardhat.config.ts deploys to, once the launch voters are named", async function () {
      const files = (await readdir(dir)).sort();
      expect(files).to.deep.equal(["arbitrumSepolia.json5", "localhost.json5", "polygonAmoy.json5"]);
      for (const file of files) {
        const raw = (await readDeploymentParameters(join(dir, file))) as { AGPTToken?: { allocations?: Array<{ to: string }> } };
        const placeholders = (raw.AGPTToken?.allocations ?? []).filter((a) => a.to.startsWith("<"));
        if (placeholders.length > 0) {
          // As shipped, a public file names no real holder: the deploy refuses it, saying what to fill in.
          expect(refusal(raw), file).to.contain(`AGPTToken.allocations[0].to: "<launch voters' multisig>" is not a holder`);
          for (const a of placeholders) a.to = HOLDER;
        }
        const params = checkParameters(raw, file);
        expect(params.timelockDelay, file).to.be.greaterThan(params.disputeWindow + params.sequencerGracePeriod);
        expect(params.governanceTimeout, file).to.be.at.least(proposalPathSeconds(params) + governanceMargin(params));
      }
    });

    it("give governance the proposal path plus a fifth on the testnets: 10 days + 2 days within 14", async function () {
      for (const name of ["arbitrumSepolia", "polygonAmoy"] as const) {
        const raw = await readNetworkParameters(name);
        for (const a of raw.AGPTToken!.allocations as Array<{ to: string }>) if (a.to.startsWith("<")) a.to = HOLDER;
        const p = checkParameters(raw, name);
        expect(proposalPathSeconds(p), name).to.equal(10 * 86_400);
        expect(governanceMargin(p), name).to.equal(2 * 86_400);
        expect(p.governanceTimeout, name).to.equal(14 * 86_400);
        expect(p.arbiterTimeout, name).to.equal(3 * 86_400);
        expect(p.usageBucket, name).to.equal(3600);
        expect(p.disputeBond, name).to.equal(5n * AGPT);
        // P6: nothing stays with the deployer; the treasury is the timelock; the listed voters reach the quorum.
        expect(p.maxDeployerShareBps, name).to.equal(0);
        expect(p.allocations, name).to.deep.equal([
          { to: HOLDER, amount: 10_000_000n * AGPT },
          { to: "timelock", amount: 90_000_000n * AGPT },
        ]);
        expect(() => checkDeployerShare(p, DEPLOYER, false, name)).to.not.throw();
      }
      // The same pace relayer/chain uses to turn blocks into durations for people.
      for (const name of ["arbitrumSepolia", "polygonAmoy", "localhost"] as const) {
        const raw = await readNetworkParameters(name);
        expect((raw.Governance as { blockTime: number }).blockTime, name).to.equal(networkByName(name).secondsPerClockTick);
      }
      const local = checkParameters(await readNetworkParameters("localhost"), "localhost");
      expect(local.usageBucket).to.equal(60);
      expect(local.governanceTimeout).to.be.at.least(proposalPathSeconds(local) + governanceMargin(local));
    });

    it("use production timings on the testnets: about 1 day delay, 1 week of voting, 4% quorum, 2 days timelock", async function () {
      const blockSeconds = { arbitrumSepolia: 12, polygonAmoy: 2 } as const; // L1 clock on Arbitrum
      for (const [file, seconds] of Object.entries(blockSeconds)) {
        const raw = await readNetworkParameters(file as keyof typeof blockSeconds);
        for (const a of raw.AGPTToken!.allocations as Array<{ to: string }>) if (a.to.startsWith("<")) a.to = HOLDER;
        const p = checkParameters(raw, file);
        expect(p.blockTime, file).to.equal(seconds);
        expect(p.votingDelay * seconds, file).to.equal(86_400);
        expect(p.votingPeriod * seconds, file).to.equal(7 * 86_400);
        expect(p.quorumPercent, file).to.equal(4);
        expect(p.timelockDelay, file).to.equal(2 * 86_400);
        expect(p.disputeWindow, file).to.equal(3600);
        expect(p.relayer, file).to.equal(undefined);
      }
    });
  });

  describe("checkParameters", function () {
    it("requires the governance clock's pace", function () {
      expect(refusal({})).to.contain("Governance: required (at least blockTime");
      expect(refusal({ Governance: { blockTime: 0 } })).to.contain("Governance.blockTime: must be a positive number");
    });

    it("fills in the production defaults", function () {
      const p = checkParameters({ Governance: G }, "test.json5");
      expect(p).to.deep.include({
        disputeWindow: 3600,
        votingDelay: GOVERNANCE_DEFAULTS.votingDelay,
        votingPeriod: GOVERNANCE_DEFAULTS.votingPeriod,
        proposalThreshold: GOVERNANCE_DEFAULTS.proposalThreshold,
        quorumPercent: 4,
        timelockDelay: 172_800,
        initialSupply: 100_000_000n * AGPT,
        usageBucket: 3600,
        disputeBond: AGPT,
        arbiterTimeout: 3 * 86_400,
        governanceTimeout: 14 * 86_400,
        sequencerGracePeriod: 0,
        maxDeployerShareBps: 0,
      });
      expect(p.allocations).to.deep.equal([]);
      expect(p.paymentToken).to.equal(undefined);
    });

    it("reads amounts exactly, as AGPT text or as Ignition bigints", function () {
      const p = checkParameters(
        { AGPTToken: { initialSupply: "1000000.5 AGPT" }, Governance: { ...G, proposalThreshold: 7n } },
        "test.json5",
      );
      expect(p.initialSupply).to.equal(1_000_000n * AGPT + AGPT / 2n);
      expect(p.proposalThreshold).to.equal(7n);
      expect(refusal({ Governance: { ...G, proposalThreshold: "100 USD" } })).to.contain("Governance.proposalThreshold");
    });

    it("refuses a timelock delay that does not exceed the dispute window, naming both", function () {
      expect(refusal({ Governance: { ...G, timelockDelay: 3600 } })).to.contain(
        "Governance.timelockDelay (3600 s) must be longer than AutoPayLLM.disputeWindow (3600 s, the default)",
      );
      expect(refusal({ AutoPayLLM: { disputeWindow: 7200 }, Governance: { ...G, timelockDelay: 7000 } })).to.contain(
        "raise timelockDelay above 7200 or shorten disputeWindow",
      );
    });

    it("counts the sequencer grace period in the timelock check (the window an outage can make)", function () {
      const feed = RELAYER;
      const raw = (grace: number) => ({
        AutoPayLLM: { disputeWindow: 3600, sequencerUptimeFeed: feed, sequencerGracePeriod: grace },
        Governance: { ...G, timelockDelay: 7200 },
      });
      expect(checkParameters(raw(3599), "t").sequencerGracePeriod).to.equal(3599);
      expect(refusal(raw(3600))).to.contain(
        "Governance.timelockDelay (7200 s) must be longer than AutoPayLLM.disputeWindow (3600 s) + " +
          "AutoPayLLM.sequencerGracePeriod (3600 s) = 7200 s",
      );
      expect(refusal({ AutoPayLLM: { sequencerGracePeriod: 60 }, Governance: G })).to.contain(
        "AutoPayLLM.sequencerGracePeriod: needs AutoPayLLM.sequencerUptimeFeed",
      );
    });

    it("refuses a governance timeout shorter than the proposal path plus its margin, naming both and the fix", function () {
      // The previous shipped timings: 1 day + 7 days of 12 s blocks + 2 days = 864,000 s, against 7 days.
      const previous = {
        AutoPayLLM: { disputeTimeouts: { arbiter: 259_200, governance: 604_800 } },
        Governance: { ...G, votingDelay: 7200, votingPeriod: 50_400, timelockDelay: 172_800 },
      };
      const message = refusal(previous);
      expect(message).to.contain(
        "AutoPayLLM.disputeTimeouts.governance (604800 s) leaves governance no time to resolve a dispute the oracle " +
          "did not answer: the proposal path takes (votingDelay 7200 + votingPeriod 50400 blocks) x blockTime 12 s + " +
          "timelockDelay 172800 s = 864000 s, plus a margin of 172800 s",
      );
      expect(message).to.contain("raise disputeTimeouts.governance to at least 1036800");
      // The same blocks at Polygon's 2 s fit; at least the fixed margin of an hour applies to short paths.
      expect(checkParameters({ ...previous, Governance: { ...previous.Governance, blockTime: 2 } }, "t").blockTime).to.equal(2);
      expect(governanceMargin({ blockTime: 1, votingDelay: 0, votingPeriod: 10, timelockDelay: 120 })).to.equal(3600);
      const justEnough = { ...previous, AutoPayLLM: { disputeTimeouts: { arbiter: 259_200, governance: 1_036_800 } } };
      expect(checkParameters(justEnough, "t").governanceTimeout).to.equal(1_036_800);
      justEnough.AutoPayLLM.disputeTimeouts.governance -= 1;
      expect(refusal(justEnough)).to.contain("at least 1036800");
    });

    it("with an oracle: its attempts fit in the arbiter's time, and disputes cost a bond", function () {
      const oracle = { functionsRouter: RELAYER, requestTimeout: 3600, maxAttempts: 3 };
      expect(
        refusal({ AutoPayLLM: { disputeTimeouts: { arbiter: 10_800, governance: 14 * 86_400 } }, Governance: G, UsageOracle: oracle }),
      ).to.contain("AutoPayLLM.disputeTimeouts.arbiter (10800 s) must leave the oracle all its attempts");
      expect(refusal({ AutoPayLLM: { disputeBond: "0 AGPT" }, Governance: G, UsageOracle: oracle })).to.contain(
        "AutoPayLLM.disputeBond: must be positive where an oracle answers disputes",
      );
      expect(checkParameters({ AutoPayLLM: { disputeBond: "0 AGPT" }, Governance: G }, "t").disputeBond).to.equal(0n);
    });

    it("hands the supply out as listed, the rest where \"rest\" says; refuses a distribution nobody can govern with", function () {
      const p = checkParameters(
        {
          AGPTToken: {
            initialSupply: "1000 AGPT",
            allocations: [
              { to: HOLDER, amount: "100 AGPT" },
              { to: "timelock", amount: "rest" },
            ],
          },
          Governance: { ...G, proposalThreshold: "10 AGPT" },
        },
        "t",
      );
      expect(p.allocations).to.deep.equal([
        { to: HOLDER, amount: 100n * AGPT },
        { to: "timelock", amount: 900n * AGPT },
      ]);
      const all = (allocations: unknown[], threshold = "10 AGPT") =>
        refusal({ AGPTToken: { initialSupply: "1000 AGPT", allocations }, Governance: { ...G, proposalThreshold: threshold } });
      expect(all([{ to: "timelock", amount: "rest" }])).to.contain(
        "AGPTToken.allocations leave 0 AGPT outside the timelock, below the quorum",
      );
      expect(all([{ to: HOLDER, amount: "20 AGPT" }, { to: "timelock", amount: "rest" }], "30 AGPT")).to.contain(
        "give nobody outside the timelock the proposal threshold (30 AGPT)",
      );
      expect(all([{ to: HOLDER, amount: "2000 AGPT" }])).to.contain("hand out 2000 AGPT, more than AGPTToken.initialSupply");
      expect(all([{ to: "timelock", amount: "rest" }, { to: HOLDER, amount: "rest" }])).to.contain(
        'at most one entry may take "rest"',
      );
      expect(all([{ to: "0x1234", amount: "1 AGPT" }])).to.contain('AGPTToken.allocations[0].to: "0x1234" is not a holder');
      expect(refusal({ AGPTToken: { maxDeployerShare: "half" }, Governance: G })).to.contain(
        'AGPTToken.maxDeployerShare: "half" is not a share of the supply',
      );
    });

    it("refuses unknown parameters, so a typo never deploys a default", function () {
      expect(refusal({ Governance: { timelockdelay: 600 } })).to.contain("unknown parameter Governance.timelockdelay");
      expect(refusal({ Relayer: { relayer: RELAYER } })).to.contain("unknown parameter Relayer");
    });

    it("refuses out-of-range values and bad addresses, each with its field", function () {
      const message = refusal({
        AutoPayLLM: { disputeWindow: 30, paymentToken: "0x1234", usageBucket: 7000 },
        Governance: { ...G, votingPeriod: 0, quorumPercent: 101 },
        GuardianRole: { guardian: "0x0000000000000000000000000000000000000000" },
      });
      expect(message).to.contain("AutoPayLLM.disputeWindow: must be at least 60 seconds");
      expect(message).to.contain("AutoPayLLM.paymentToken: must be a non-zero address");
      expect(message).to.contain("Governance.votingPeriod: must be at least 1 block");
      expect(message).to.contain("Governance.quorumPercent: must be at most 100 percent");
      expect(message).to.contain("GuardianRole.guardian: must be a non-zero address");
      expect(message).to.contain("AutoPayLLM.usageBucket: must divide a day");
    });

    it("reads the providers and models to register, in the payment token's units", function () {
      const p = checkParameters(
        {
          AutoPayLLM: {
            providers: [{ name: "openai", payee: RELAYER.toLowerCase() }],
            models: [
              { name: "gpt-4-turbo", maxPrice: "0.12 AGPT/1k tokens", dailyBudget: "500 AGPT" },
              { name: "mixtral-8x22b", maxPrice: 8_500_000_000_000_000n },
            ],
          },
          Governance: G,
        },
        "test.json5",
      );
      expect(p.registry).to.deep.equal({
        providers: [{ name: "openai", payee: RELAYER }],
        models: [
          { name: "gpt-4-turbo", maxPricePer1k: (12n * AGPT) / 100n, dailyBudget: 500n * AGPT },
          { name: "mixtral-8x22b", maxPricePer1k: 8_500_000_000_000_000n, dailyBudget: 0n },
        ],
      });
      expect(toIgnition(p).options.registry).to.deep.equal(p.registry);
    });

    it("refuses bad providers and models, each with its field and the fix", function () {
      const message = refusal({
        AutoPayLLM: {
          providers: [
            { name: "openai", payee: RELAYER },
            { name: "openai", payee: HOLDER },
          ],
          models: [
            { name: "gpt-4-turbo", maxPrice: "0 AGPT/1k tokens" },
            { name: "claude", maxPrice: "0.1 USD/1k tokens", dailyBudget: "500" },
          ],
        },
        Governance: G,
      });
      expect(message).to.contain('AutoPayLLM.providers[1].name: "openai" is listed twice (also providers[0])');
      expect(message).to.contain("AutoPayLLM.models[0].maxPrice:");
      expect(message).to.contain('AutoPayLLM.models[1].maxPrice: "0.1 USD/1k tokens" is in USD');
      expect(message).to.contain('AutoPayLLM.models[1].dailyBudget: "500" is not an amount');
      expect(refusal({ AutoPayLLM: { providers: [{ name: "x".repeat(65), payee: HOLDER }] }, Governance: G })).to.contain(
        "AutoPayLLM.providers[0].name: must be 1 to 64 bytes",
      );
      expect(refusal({ AutoPayLLM: { providers: [{ name: "openai", payee: ZERO }] }, Governance: G })).to.contain(
        "AutoPayLLM.providers[0].payee: must be a non-zero address",
      );
      expect(refusal({ AutoPayLLM: { models: [{ name: "m", maxPrice: 0n }] }, Governance: G })).to.contain(
        "AutoPayLLM.models[0].maxPrice: must be positive: a model is billable only with a price cap",
      );
      expect(
        refusal({
          AutoPayLLM: { paymentToken: RELAYER, disputeBond: 5n, models: [{ name: "m", maxPrice: "0.1 AGPT/1k tokens" }] },
          Governance: G,
        }),
      ).to.contain('AutoPayLLM.models[0].maxPrice: settling in an existing AutoPayLLM.paymentToken, give it in that token\'s units as a bigint');
    });

    it("localhost registers the seed's providers and models (config/litellm-router.yaml)", async function () {
      const local = checkParameters(await readNetworkParameters("localhost"), "localhost");
      expect(local.registry.providers.map((p) => p.name)).to.deep.equal([
        "openai", "anyscale", "together-ai", "groq", "firework-ai", "deepinfra",
      ]);
      expect(local.registry.models.map((m) => [m.name, m.maxPricePer1k])).to.deep.equal([
        ["gpt-4-turbo", (12n * AGPT) / 100n],
        ["mixtral-8x22b", (85n * AGPT) / 10_000n],
      ]);
    });

    it("refuses a proposal threshold above the supply", function () {
      expect(
        refusal({ AGPTToken: { initialSupply: "1000 AGPT" }, Governance: { ...G, proposalThreshold: "1001 AGPT" } }),
      ).to.contain("nobody could ever propose");
    });
  });

  describe("checkDeployerShare", function () {
    const distributed = (deployerShare: string, keep: string) =>
      checkParameters(
        {
          AGPTToken: {
            initialSupply: "1000 AGPT",
            allocations: [
              { to: HOLDER, amount: "100 AGPT" },
              { to: "deployer", amount: keep },
              { to: "timelock", amount: "rest" },
            ],
            maxDeployerShare: deployerShare,
          },
          Governance: { ...G, proposalThreshold: "10 AGPT" },
        },
        "t",
      );

    it("refuses, on a public network, to leave the deployer more than maxDeployerShare (default 0 %)", function () {
      const keepsAll = checkParameters({ Governance: G }, "t");
      expect(() => checkDeployerShare(keepsAll, DEPLOYER, true, "t")).to.not.throw(); // a local node: development
      expect(() => checkDeployerShare(keepsAll, DEPLOYER, false, "t")).to.throw(
        ParameterError,
        `AGPTToken.allocations leave the deployer ${DEPLOYER} 100000000 AGPT of 100000000 AGPT, more than ` +
          "AGPTToken.maxDeployerShare (0 %)",
      );
      expect(() => checkDeployerShare(distributed("1%", "10 AGPT"), DEPLOYER, false, "t")).to.not.throw();
      expect(() => checkDeployerShare(distributed("1%", "10.01 AGPT"), DEPLOYER, false, "t")).to.throw(ParameterError);
      expect(() => checkDeployerShare(distributed("0.5%", "5 AGPT"), DEPLOYER, false, "t")).to.not.throw();
    });

    it("counts an allocation to the deployer's own address as kept", function () {
      const p = checkParameters(
        {
          AGPTToken: {
            initialSupply: "1000 AGPT",
            allocations: [{ to: DEPLOYER, amount: "100 AGPT" }, { to: "timelock", amount: "rest" }],
          },
          Governance: { ...G, proposalThreshold: "10 AGPT" },
        },
        "t",
      );
      expect(() => checkDeployerShare(p, DEPLOYER, false, "t")).to.throw(ParameterError, "leave the deployer");
      expect(() => checkDeployerShare(p, HOLDER, false, "t")).to.not.throw();
    });
  });

  describe("toIgnition", function () {
    it("derives the graph: payment token source, and a role module only for a named account", function () {
      const fresh = toIgnition(checkParameters({ Governance: G, RelayerRole: { relayer: RELAYER.toLowerCase() } }, "t"));
      expect(fresh.options).to.deep.equal({
        paymentToken: "fresh",
        relayer: true,
        rotator: false,
        guardian: false,
        oracle: false,
        sequencerFeed: false,
        allocations: [],
        registry: { providers: [], models: [] },
      });
      expect(fresh.parameters.RelayerRole).to.deep.equal({ relayer: RELAYER });
      expect(fresh.parameters.GuardianRole).to.equal(undefined);
      const existing = toIgnition(
        checkParameters(
          {
            AutoPayLLM: { paymentToken: RELAYER, disputeBond: 5_000_000n },
            Governance: G,
            UsageOracle: { functionsRouter: RELAYER },
          },
          "t",
        ),
      );
      expect(existing.options).to.deep.include({ paymentToken: "existing", relayer: false, guardian: false, oracle: true });
      expect(existing.parameters.UsageOracle).to.deep.equal({
        functionsRouter: RELAYER,
        requestTimeout: 900,
        maxAttempts: 3,
        toleranceBps: 0,
      });
      expect(existing.parameters.AutoPayLLM).to.deep.equal({
        disputeWindow: 3600,
        paymentToken: RELAYER,
        usageBucket: 3600,
        disputeBond: 5_000_000n,
        arbiterTimeout: 3 * 86_400,
        governanceTimeout: 14 * 86_400,
      });
      expect(refusal({ AutoPayLLM: { paymentToken: RELAYER }, Governance: G })).to.contain(
        "AutoPayLLM.disputeBond: required with an existing paymentToken",
      );
    });

    it("sends one transfer per allocation that leaves the deployer, the timelock's without an address", function () {
      const p = checkParameters(
        {
          AGPTToken: {
            initialSupply: "1000 AGPT",
            allocations: [
              { to: HOLDER, amount: "100 AGPT" },
              { to: "deployer", amount: "1 AGPT" },
              { to: DEPLOYER, amount: "1 AGPT" },
              { to: "timelock", amount: "rest" },
            ],
          },
          Governance: { ...G, proposalThreshold: "10 AGPT" },
        },
        "t",
      );
      const { options, parameters } = toIgnition(p, DEPLOYER);
      expect(options.allocations).to.deep.equal(["account", "timelock"]);
      expect(parameters.AGPTAllocations).to.deep.equal({ to0: HOLDER, amount0: 100n * AGPT, amount1: 898n * AGPT });
    });
  });
});
