/**
 * P1 (issue #12): the shipped parameters of every network give governance time to judge a dispute the oracle did
 * not answer. For each deploy/parameters/<network>.json5, the suite is deployed on the Hardhat network exactly as
 * `npm run deploy` would (test/deploy/network-suite.ts), a row is settled and disputed, nobody answers it by the
 * arbiter deadline (arbitrumSepolia: the UsageOracle on MockFunctionsRouter is the verifier, but unconfigured it
 * cannot send a request; the other networks deploy no oracle), and only then governance proposes
 * `resolveDispute(disputeId, overbilled)` and walks the real path through the deployed Governor and Timelock, with
 * blocks mined at the network's `blockTime`. It must execute before the dispute's governance deadline with at least
 * the margin the deploy requires (scripts/deploy/parameters.ts, governanceMargin).
 *
 * The last case runs the previous shipped timings (arbiter 3 days + governance 7 days = 10 days, the path's exact
 * length): the deploy now refuses them, and deployed anyway, the same resolution misses the deadline even when
 * governance proposes the moment the dispute opens. This suite fails on the previous code: there the shipped files
 * set no dispute timeouts (the contract then allowed 3 + 7 days) and no blockTime, and the deploy checked neither.
 */
import { expect } from "chai";
import { network } from "hardhat";

import { governanceMargin, proposalPathSeconds, ParameterError } from "../../scripts/deploy/parameters.js";
import {
  NETWORK_NAMES,
  deployNetworkSuite,
  executeWhenReady,
  openForBusiness,
  passProposal,
  proposal,
  proposeAndQueue,
  settleAndDispute,
} from "../deploy/network-suite.js";

const connection = await network.create();
const { networkHelpers } = connection;

const RESOLVED = 2n; // IAutoPayLLM.DisputeStatus.Resolved
const EXPIRED = 3n;

describe("dispute deadlines against the real proposal path (deploy/parameters/*.json5)", function () {
  this.timeout(600_000);

  for (const name of NETWORK_NAMES) {
    it(`${name}: governance resolves a dispute the oracle did not answer, before its deadline with the margin`, async function () {
      const s = await deployNetworkSuite(connection, name);
      await openForBusiness(connection, s);
      const { disputeId, charge } = await settleAndDispute(connection, s);
      const opened = await s.autoPayLLM.disputeInfo(disputeId);
      expect(opened.governanceDeadline - opened.arbiterDeadline).to.equal(BigInt(s.params.governanceTimeout));
      if (s.usageOracle !== undefined) {
        // The dispute asked its verifier itself; unconfigured, the oracle could not send a request.
        expect(await s.autoPayLLM.verifier()).to.equal(await s.usageOracle.getAddress());
        expect((await s.usageOracle.verificationOf(disputeId)).attempts).to.equal(0n);
      }

      // Worst case: governance starts only once the oracle's time is up.
      await networkHelpers.time.increaseTo(opened.arbiterDeadline);
      const overbilled = charge.tokens / 4n;
      const resolve = proposal(
        [[s.autoPayLLM, "resolveDispute", [disputeId, overbilled]]],
        `Resolve dispute ${disputeId}: ${overbilled} tokens overbilled (${name})`,
      );
      const payerBefore = await s.autoPayLLM.balanceOf(s.payer.address);
      const executedAt = await passProposal(connection, s, resolve);

      const closed = await s.autoPayLLM.disputeInfo(disputeId);
      expect(closed.status).to.equal(RESOLVED);
      expect(closed.overbilledTokens).to.equal(overbilled);
      const refund = (charge.amount * overbilled) / charge.tokens;
      expect(closed.refund).to.equal(refund);
      // Refund and the bond (returned: overbilled > 0) to the payer's deposit.
      expect(await s.autoPayLLM.balanceOf(s.payer.address)).to.equal(payerBefore + refund + opened.bond);

      const margin = governanceMargin(s.params);
      const path = proposalPathSeconds(s.params);
      expect(BigInt(executedAt) - opened.arbiterDeadline, "the path took about its stated length").to.be.gte(
        BigInt(path),
      );
      expect(BigInt(executedAt + margin), `executed ${executedAt}, margin ${margin} s`).to.be.lte(
        opened.governanceDeadline,
      );
    });
  }

  it("arbitrumSepolia with the previous timings (3 + 7 days): refused by the deploy, and too short when run", async function () {
    const previous = { arbiter: 3 * 86_400, governance: 7 * 86_400 };
    let refusal = "";
    try {
      await deployNetworkSuite(connection, "arbitrumSepolia", {
        edit: (raw) => (raw.AutoPayLLM!.disputeTimeouts = { ...previous }),
      });
    } catch (error) {
      if (!(error instanceof ParameterError)) throw error;
      refusal = error.message;
    }
    expect(refusal).to.contain("AutoPayLLM.disputeTimeouts.governance (604800 s) leaves governance no time");
    expect(refusal).to.contain("raise disputeTimeouts.governance to at least 1036800");

    const s = await deployNetworkSuite(connection, "arbitrumSepolia", {
      edit: (raw) => (raw.AutoPayLLM!.disputeTimeouts = { ...previous }),
      check: false,
    });
    expect(await s.autoPayLLM.governanceTimeout()).to.equal(BigInt(previous.governance));
    await openForBusiness(connection, s);
    const { disputeId } = await settleAndDispute(connection, s);
    const opened = await s.autoPayLLM.disputeInfo(disputeId);
    // Best case for governance: it proposes in the dispute's own second. The path is 10 days; the deadline too.
    const resolve = proposal([[s.autoPayLLM, "resolveDispute", [disputeId, 1n]]], `Resolve ${disputeId} (late)`);
    await proposeAndQueue(connection, s, resolve);
    await expect(executeWhenReady(connection, s, resolve))
      .to.be.revertedWithCustomError(s.autoPayLLM, "AutoPayLLMNotResolver")
      .withArgs(await s.timelock.getAddress(), opened.arbiterDeadline, opened.governanceDeadline);
    // The default at the last deadline: the charge stands, the bond goes back to the payer.
    await expect(s.autoPayLLM.settleExpiredDispute(disputeId))
      .to.emit(s.autoPayLLM, "DisputeResolved")
      .withArgs(disputeId, s.deployer.address, 0n, 0n, opened.heldAmount, true);
    expect((await s.autoPayLLM.disputeInfo(disputeId)).status).to.equal(EXPIRED);
  });
});
