import { readdir } from "node:fs/promises";
import { join } from "node:path";

import { readDeploymentParameters } from "@nomicfoundation/hardhat-ignition/helpers";
import { expect } from "chai";

import { GOVERNANCE_DEFAULTS } from "../../deploy/modules/Governance.js";
import { ParameterError, checkParameters, toIgnition } from "../../scripts/deploy/parameters.js";
import { REPO } from "./local-node.js";

const AGPT = 10n ** 18n;
const RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

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

    it("are valid for every network hardhat.config.ts deploys to", async function () {
      const files = (await readdir(dir)).sort();
      expect(files).to.deep.equal(["arbitrumSepolia.json5", "localhost.json5", "polygonAmoy.json5"]);
      for (const file of files) {
        const params = checkParameters(await readDeploymentParameters(join(dir, file)), file);
        expect(params.timelockDelay, file).to.be.greaterThan(params.disputeWindow);
      }
    });

    it("use production timings on the testnets: about 1 day delay, 1 week of voting, 4% quorum, 2 days timelock", async function () {
      const blockSeconds = { "arbitrumSepolia.json5": 12, "polygonAmoy.json5": 2 }; // L1 clock on Arbitrum
      for (const [file, seconds] of Object.entries(blockSeconds)) {
        const p = checkParameters(await readDeploymentParameters(join(dir, file)), file);
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
    it("fills in the production defaults", function () {
      const p = checkParameters({}, "test.json5");
      expect(p).to.deep.include({
        disputeWindow: 3600,
        votingDelay: GOVERNANCE_DEFAULTS.votingDelay,
        votingPeriod: GOVERNANCE_DEFAULTS.votingPeriod,
        proposalThreshold: GOVERNANCE_DEFAULTS.proposalThreshold,
        quorumPercent: 4,
        timelockDelay: 172_800,
        initialSupply: 100_000_000n * AGPT,
      });
      expect(p.paymentToken).to.equal(undefined);
    });

    it("reads amounts exactly, as AGPT text or as Ignition bigints", function () {
      const p = checkParameters(
        { AGPTToken: { initialSupply: "1000000.5 AGPT" }, Governance: { proposalThreshold: 7n } },
        "test.json5",
      );
      expect(p.initialSupply).to.equal(1_000_000n * AGPT + AGPT / 2n);
      expect(p.proposalThreshold).to.equal(7n);
      expect(refusal({ Governance: { proposalThreshold: "100 USD" } })).to.contain("Governance.proposalThreshold");
    });

    it("refuses a timelock delay that does not exceed the dispute window, naming both", function () {
      expect(refusal({ Governance: { timelockDelay: 3600 } })).to.contain(
        "Governance.timelockDelay (3600 s) must be longer than AutoPayLLM.disputeWindow (3600 s, the default)",
      );
      expect(refusal({ AutoPayLLM: { disputeWindow: 7200 }, Governance: { timelockDelay: 7000 } })).to.contain(
        "raise timelockDelay above 7200 or shorten disputeWindow",
      );
    });

    it("refuses unknown parameters, so a typo never deploys a default", function () {
      expect(refusal({ Governance: { timelockdelay: 600 } })).to.contain("unknown parameter Governance.timelockdelay");
      expect(refusal({ Relayer: { relayer: RELAYER } })).to.contain("unknown parameter Relayer");
    });

    it("refuses out-of-range values and bad addresses, each with its field", function () {
      const message = refusal({
        AutoPayLLM: { disputeWindow: 30, paymentToken: "0x1234" },
        Governance: { votingPeriod: 0, quorumPercent: 101 },
        GuardianRole: { guardian: "0x0000000000000000000000000000000000000000" },
      });
      expect(message).to.contain("AutoPayLLM.disputeWindow: must be at least 60 seconds");
      expect(message).to.contain("AutoPayLLM.paymentToken: must be a non-zero address");
      expect(message).to.contain("Governance.votingPeriod: must be at least 1 block");
      expect(message).to.contain("Governance.quorumPercent: must be at most 100 percent");
      expect(message).to.contain("GuardianRole.guardian: must be a non-zero address");
    });

    it("refuses a proposal threshold above the supply", function () {
      expect(
        refusal({ AGPTToken: { initialSupply: "1000 AGPT" }, Governance: { proposalThreshold: "1001 AGPT" } }),
      ).to.contain("nobody could ever propose");
    });
  });

  describe("toIgnition", function () {
    it("derives the graph: payment token source, and a role module only for a named account", function () {
      const fresh = toIgnition(checkParameters({ RelayerRole: { relayer: RELAYER.toLowerCase() } }, "t"));
      expect(fresh.options).to.deep.equal({ paymentToken: "fresh", relayer: true, guardian: false, oracle: false });
      expect(fresh.parameters.RelayerRole).to.deep.equal({ relayer: RELAYER });
      expect(fresh.parameters.GuardianRole).to.equal(undefined);
      const existing = toIgnition(
        checkParameters({ AutoPayLLM: { paymentToken: RELAYER }, UsageOracle: { functionsRouter: RELAYER } }, "t"),
      );
      expect(existing.options).to.deep.equal({ paymentToken: "existing", relayer: false, guardian: false, oracle: true });
      expect(existing.parameters.UsageOracle).to.deep.equal({ functionsRouter: RELAYER });
      expect(existing.parameters.AutoPayLLM).to.deep.equal({ disputeWindow: 3600, paymentToken: RELAYER });
    });
  });
});
