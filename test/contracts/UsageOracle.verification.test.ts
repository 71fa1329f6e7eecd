import { expect } from "chai";
import { network } from "hardhat";

import { decodeRequest } from "../../oracle/functions/simulator.js";
import type { Charge } from "../../relayer/batcher/rows-tree.js";
import {
  CALLBACK_GAS,
  deliver,
  deployOracleSuite,
  DON_ID,
  openDispute,
  runRequest,
  SECRETS_VERSION,
  sentRequest,
  SOURCE,
  SUBSCRIPTION_ID,
  type OracleSuite,
} from "../helpers/oracle.js";
import { AGPT, DisputeStatus, expectSolvent, GPT4_PRICE, MIXTRAL_PRICE, row, settle, type Settlement } from "../helpers/suite.js";
import { send, UsageServer } from "../oracle/usage-server.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const BOND = 5n * AGPT;
const HOUR = 3600n;

enum FailureReason {
  None,
  FunctionsError,
  MalformedResponse,
  DisputeClosed,
  DeadlinePassed,
}

const server = new UsageServer("test-usage-key-0123456789");

interface Disputed extends OracleSuite {
  rows: Charge[];
  batch: Settlement;
  settledAt: bigint;
}

/**
 * A settled batch: payer A 100,000 gpt-4-turbo tokens on openai (12 AGPT), payer B 50,000 (6 AGPT), payer A
 * 1,000,000 mixtral tokens on groq (8.5 AGPT). Bond 5 AGPT. Row 0 is disputed by payer A.
 */
async function disputedFixture(): Promise<Disputed> {
  const s = await deployOracleSuite(ethers, server.url);
  await s.router.setDisputeBond(BOND);
  const [a, b] = s.payers;
  const rows = [
    row(a!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE),
    row(b!.address, s.openai, s.gpt4, 50_000n, GPT4_PRICE),
    row(a!.address, s.groq, s.mixtral, 1_000_000n, MIXTRAL_PRICE),
  ];
  const batch = await settle(s, rows);
  const settledAt = (await s.router.batchInfo(batch.batchId)).settledAt;
  await openDispute(s, batch, rows, 0);
  return { ...s, rows, batch, settledAt };
}

/** Records provider-side usage for row `index`, inside the usage window, and asks for verification. */
function usage(s: Disputed, index: number, tokens: bigint, at = s.settledAt - 60n) {
  const r = s.rows[index]!;
  server.add({
    provider: r.provider === s.openai ? "openai" : "groq",
    model: r.model === s.gpt4 ? "gpt-4-turbo" : "mixtral-8x22b",
    payer: r.user,
    at: Number(at),
    tokens,
  });
}

async function request(s: Disputed, index = 0, signer = s.reconciler) {
  const tx = await s.oracle.connect(signer).requestVerification(s.batch.batchId, index, s.rows[index]!, s.batch.tree.proof(index));
  return sentRequest(s, tx);
}

/** The whole loop: request, Node run of the source against the usage server, delivery through the router. */
async function verify(s: Disputed, index = 0) {
  const sent = await request(s, index);
  const result = await runRequest(sent);
  return { sent, result, tx: await deliver(s, sent, result) };
}

describe("UsageOracle: dispute verification through Chainlink Functions", function () {
  before(async function () {
    await server.start();
  });
  after(async function () {
    await server.stop();
  });
  beforeEach(function () {
    server.records.length = 0;
    server.queries.length = 0;
    server.override = undefined;
  });

  describe("requestVerification", function () {
    it("sends the repository's source with the row's provider, model, payer and window, and the secrets reference", async function () {
      const s = await loadFixture(disputedFixture);
      const tx = s.oracle.connect(s.payers[0]!).requestVerification(s.batch.batchId, 0, s.rows[0]!, s.batch.tree.proof(0));
      await expect(tx).to.emit(s.oracle, "VerificationRequested").and.to.emit(s.oracle, "RequestSent");
      const sent = await sentRequest(s, await tx);
      expect(sent.subscriptionId).to.equal(SUBSCRIPTION_ID);
      expect(sent.donId).to.equal(DON_ID);
      expect(sent.callbackGasLimit).to.equal(BigInt(CALLBACK_GAS));
      const decoded = decodeRequest(sent.data);
      expect(decoded.source).to.equal(SOURCE);
      expect(decoded.codeLocation).to.equal(0);
      expect(decoded.secretsLocation).to.equal(2); // DON-hosted
      const lookback = await s.oracle.usageLookback();
      expect(decoded.args).to.deep.equal([
        server.url,
        "openai",
        "gpt-4-turbo",
        s.rows[0]!.user.toLowerCase(),
        (s.settledAt - lookback).toString(),
        s.settledAt.toString(),
      ]);
      expect(await s.oracle.requestArgs(s.batch.batchId, 0, s.rows[0]!)).to.deep.equal(decoded.args);
      const v = await s.oracle.verificationOf(s.batch.batchId, 0);
      expect(v.requestId).to.equal(sent.requestId);
      expect(v.attempts).to.equal(1n);
      const stored = await s.oracle.requestOf(sent.requestId);
      expect(stored.batchId).to.equal(s.batch.batchId);
      expect(stored.billedTokens).to.equal(s.rows[0]!.tokens);
    });

    it("sends no secrets reference while its version is zero", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setSecretsReference(0, 0);
      const decoded = decodeRequest((await request(s)).data);
      expect(decoded.secrets).to.equal(undefined);
      expect(decoded.secretsLocation).to.equal(undefined);
    });

    it("lets the row's payer and REQUESTER_ROLE request; refuses anyone else", async function () {
      const s = await loadFixture(disputedFixture);
      for (const signer of [s.stranger, s.payers[1]!, s.relayer, s.arbiter]) {
        await expect(s.oracle.connect(signer).requestVerification(s.batch.batchId, 0, s.rows[0]!, s.batch.tree.proof(0)))
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleNotRequester")
          .withArgs(signer.address, s.rows[0]!.user);
      }
      await request(s, 0, s.payers[0]!);
    });

    it("refuses a row that is not disputed or no longer open", async function () {
      const s = await loadFixture(disputedFixture);
      await expect(s.oracle.connect(s.reconciler).requestVerification(s.batch.batchId, 1, s.rows[1]!, s.batch.tree.proof(1)))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleDisputeNotOpen")
        .withArgs(s.batch.batchId, 1n);
      await s.router.connect(s.admin).resolveDispute(s.batch.batchId, 0, 0n);
      await expect(request(s)).to.be.revertedWithCustomError(s.oracle, "UsageOracleDisputeNotOpen");
    });

    it("refuses a charge or proof that is not the disputed row", async function () {
      const s = await loadFixture(disputedFixture);
      const r = s.rows[0]!;
      const ask = (charge: Charge, proof: string[]) =>
        s.oracle.connect(s.reconciler).requestVerification(s.batch.batchId, 0, charge, proof);
      const forged: [Charge, string[]][] = [
        [{ ...r, tokens: r.tokens * 2n }, s.batch.tree.proof(0)], // more billed tokens: a bigger refund
        [{ ...r, model: s.mixtral }, s.batch.tree.proof(0)],
        [{ ...r, amount: r.amount - 1n }, s.batch.tree.proof(0)],
        [{ ...r, provider: s.groq }, s.batch.tree.proof(0)],
        [{ ...r, user: s.payers[1]!.address }, s.batch.tree.proof(0)],
        [s.rows[2]!, s.batch.tree.proof(2)], // the same payer's other row
        [r, []],
      ];
      for (const [charge, proof] of forged) {
        await expect(ask(charge, proof))
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleInvalidRow")
          .withArgs(s.batch.batchId, 0n);
      }
    });

    it("refuses once the router's arbiter deadline has passed", async function () {
      const s = await loadFixture(disputedFixture);
      const deadline = (await s.router.disputeInfo(s.batch.batchId, 0)).openedAt + (await s.router.arbiterTimeout());
      await time.increaseTo(deadline);
      await expect(request(s))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleDeadlinePassed")
        .withArgs(s.batch.batchId, 0n, deadline);
    });

    it("keeps one request in flight; allows a retry after requestTimeout; refuses the lost request's late answer", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 0, 10_000n);
      const first = await request(s);
      const retryAt = (await s.oracle.verificationOf(s.batch.batchId, 0)).sentAt + (await s.oracle.requestTimeout());
      await expect(request(s))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleRequestPending")
        .withArgs(s.batch.batchId, 0n, first.requestId, retryAt);
      await time.increaseTo(retryAt);
      const second = await request(s);
      expect((await s.oracle.verificationOf(s.batch.batchId, 0)).attempts).to.equal(2n);
      const late = await runRequest(first);
      await expect(deliver(s, first, late))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(first.requestId);
      await expect(deliver(s, second, await runRequest(second))).to.emit(s.oracle, "UsageVerified");
    });

    it("stops after maxAttempts requests for one dispute", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(3600, 300, 2, 0);
      server.override = (_query, res) => (send(res, 503, { error: "maintenance" }), true);
      for (let i = 0; i < 2; i++) {
        const sent = await request(s);
        await expect(deliver(s, sent, await runRequest(sent))).to.emit(s.oracle, "VerificationFailed");
      }
      await expect(request(s))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleTooManyAttempts")
        .withArgs(s.batch.batchId, 0n, 2);
    });

    it("refuses until the subscription, DON, source and usage API are configured", async function () {
      const s = await loadFixture(disputedFixture);
      const bare = await ethers.deployContract("UsageOracle", [s.routerAddress, await s.functionsRouter.getAddress(), s.admin.address]);
      await s.router.grantRole(await s.router.ARBITER_ROLE(), await bare.getAddress());
      const ask = () => bare.connect(s.payers[0]!).requestVerification(s.batch.batchId, 0, s.rows[0]!, s.batch.tree.proof(0));
      await expect(ask()).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setSource(SOURCE);
      await expect(ask()).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setUsageApi(server.url);
      await expect(ask()).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, CALLBACK_GAS);
      await expect(ask()).to.emit(bare, "VerificationRequested");
    });
  });

  describe("fulfilment", function () {
    it("refunds the overcharge computed from the provider's report, returns the bond, releases the rest", async function () {
      const s = await loadFixture(disputedFixture);
      const r = s.rows[0]!;
      usage(s, 0, 60_000n); // billed 100,000: 40% overcharged
      usage(s, 0, 999_999n, s.settledAt); // at the end of the window: outside it
      usage(s, 0, 999_999n, s.settledAt - 3601n); // before the window
      const before = await s.router.balanceOf(r.user);
      const { sent, result, tx } = await verify(s);
      expect(result.error).to.equal(undefined);
      expect(BigInt("0x" + Buffer.from(result.response!).toString("hex"))).to.equal(60_000n);
      const refund = r.amount - (r.amount * 60_000n + 99_999n) / 100_000n;
      expect(refund).to.equal((r.amount * 2n) / 5n);
      await expect(tx)
        .to.emit(s.oracle, "UsageVerified")
        .withArgs(s.batch.batchId, 0n, sent.requestId, r.tokens, 60_000n, refund)
        .and.to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, await s.oracle.getAddress(), refund, r.amount - refund, true)
        .and.to.emit(s.oracle, "RequestFulfilled");
      expect(await s.router.balanceOf(r.user)).to.equal(before + refund + BOND);
      expect(await s.router.credits(s.openai)).to.equal(r.amount - refund);
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Resolved);
      expect((await s.oracle.verificationOf(s.batch.batchId, 0)).requestId).to.equal(ethers.ZeroHash);
      expect(server.queries).to.have.length(1);
      await expectSolvent(s);
    });

    it("refunds the whole row when the provider reports no usage", async function () {
      const s = await loadFixture(disputedFixture);
      const { tx } = await verify(s);
      await expect(tx)
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, await s.oracle.getAddress(), s.rows[0]!.amount, 0n, true);
      await expectSolvent(s);
    });

    it("rejects the dispute when the provider reports at least the billed tokens: row and bond to the provider", async function () {
      const s = await loadFixture(disputedFixture);
      const r = s.rows[0]!;
      usage(s, 0, 70_000n);
      usage(s, 0, 30_000n, s.settledAt - 3600n); // first second of the window
      const before = await s.router.balanceOf(r.user);
      const { tx } = await verify(s);
      await expect(tx)
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, await s.oracle.getAddress(), 0n, r.amount, false);
      expect(await s.router.balanceOf(r.user)).to.equal(before);
      expect(await s.router.credits(s.openai)).to.equal(r.amount + BOND);
      await expectSolvent(s);
    });

    it("treats a shortfall within the governed tolerance as no overcharge", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(3600, 900, 3, 100); // 1%
      usage(s, 0, 99_000n); // exactly 1% short
      await expect((await verify(s)).tx).to.emit(s.router, "DisputeResolved").withArgs(s.batch.batchId, 0n, await s.oracle.getAddress(), 0n, s.rows[0]!.amount, false);
    });

    it("refunds a shortfall just beyond the tolerance", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(3600, 900, 3, 100);
      usage(s, 0, 98_999n);
      const r = s.rows[0]!;
      const refund = r.amount - (r.amount * 98_999n + 99_999n) / 100_000n;
      await expect((await verify(s)).tx).to.emit(s.router, "DisputeResolved").withArgs(s.batch.batchId, 0n, await s.oracle.getAddress(), refund, r.amount - refund, true);
    });

    it("refuses an answer from anyone but the Functions router", async function () {
      const s = await loadFixture(disputedFixture);
      const sent = await request(s);
      const word = ethers.zeroPadValue("0x00", 32);
      for (const signer of [s.stranger, s.admin, s.arbiter, s.payers[0]!]) {
        await expect(s.oracle.connect(signer).handleOracleFulfillment(sent.requestId, word, "0x")).to.be.revertedWithCustomError(
          s.oracle,
          "OnlyRouterCanFulfill",
        );
      }
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Open);
    });

    it("refuses an answer for an unknown request, and a replayed answer", async function () {
      const s = await loadFixture(disputedFixture);
      const word = ethers.zeroPadValue("0x00", 32);
      const unknown = ethers.id("never sent");
      await expect(s.functionsRouter.fulfillUnchecked(await s.oracle.getAddress(), unknown, word, "0x"))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(unknown);
      const { sent } = await verify(s);
      await expect(s.functionsRouter.fulfillUnchecked(await s.oracle.getAddress(), sent.requestId, word, "0x"))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(sent.requestId);
    });

    it("keeps the dispute open on a Functions error (the usage API refused) and succeeds on a retry", async function () {
      const s = await loadFixture(disputedFixture);
      const sent = await request(s);
      const failed = await runRequest(sent, { usageApiKey: "wrong-key" });
      expect(failed.error).to.equal("usage API answered HTTP 401");
      await expect(deliver(s, sent, failed))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.batch.batchId, 0n, sent.requestId, FailureReason.FunctionsError, ethers.toUtf8Bytes(failed.error!));
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Open);
      usage(s, 0, 100_000n);
      await expect((await verify(s)).tx).to.emit(s.router, "DisputeResolved");
    });

    it("keeps the dispute open on a response that is not one 32-byte word", async function () {
      const s = await loadFixture(disputedFixture);
      for (const response of ["0x", "0x01", ethers.concat([ethers.zeroPadValue("0x01", 32), ethers.zeroPadValue("0x01", 32)])]) {
        const sent = await request(s);
        await expect(s.functionsRouter.fulfill(sent.requestId, response, "0x"))
          .to.emit(s.oracle, "VerificationFailed")
          .withArgs(s.batch.batchId, 0n, sent.requestId, FailureReason.MalformedResponse, "0x");
      }
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Open);
    });

    it("drops an answer for a dispute governance resolved meanwhile", async function () {
      const s = await loadFixture(disputedFixture);
      const sent = await request(s);
      await s.router.connect(s.admin).resolveDispute(s.batch.batchId, 0, 1n);
      await expect(deliver(s, sent, await runRequest(sent)))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.batch.batchId, 0n, sent.requestId, FailureReason.DisputeClosed, "0x");
      await expectSolvent(s);
    });

    it("cannot resolve after the arbiter deadline: the late answer is dropped and governance decides", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 0, 1n);
      const sent = await request(s);
      const result = await runRequest(sent);
      const deadline = (await s.router.disputeInfo(s.batch.batchId, 0)).openedAt + (await s.router.arbiterTimeout());
      await time.increaseTo(deadline);
      await expect(deliver(s, sent, result))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.batch.batchId, 0n, sent.requestId, FailureReason.DeadlinePassed, "0x");
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Open);
      // the oracle's role does not reach past the deadline either
      const oracleAsSigner = await ethers.getImpersonatedSigner(await s.oracle.getAddress());
      await networkHelpers.setBalance(oracleAsSigner.address, 10n ** 18n);
      await expect(s.router.connect(oracleAsSigner).resolveDispute(s.batch.batchId, 0, 1n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      // timed out to governance
      await expect(s.router.connect(s.admin).resolveDispute(s.batch.batchId, 0, s.rows[0]!.amount / 2n))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, s.admin.address, s.rows[0]!.amount / 2n, s.rows[0]!.amount - s.rows[0]!.amount / 2n, true);
      await expectSolvent(s);
    });

    it("when neither the oracle nor governance answers, the payer is refunded by default", async function () {
      const s = await loadFixture(disputedFixture);
      server.override = (_query, res) => (res.destroy(), true); // the usage API hangs up
      const sent = await request(s);
      const result = await runRequest(sent);
      expect(result.error).to.equal("usage API unreachable");
      await deliver(s, sent, result);
      const info = await s.router.disputeInfo(s.batch.batchId, 0);
      const expiresAt = info.openedAt + (await s.router.arbiterTimeout()) + (await s.router.governanceTimeout());
      await time.increaseTo(expiresAt);
      const before = await s.router.balanceOf(s.rows[0]!.user);
      await expect(s.router.connect(s.stranger).refundExpiredDispute(s.batch.batchId, 0))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, s.stranger.address, s.rows[0]!.amount, 0n, true);
      expect(await s.router.balanceOf(s.rows[0]!.user)).to.equal(before + s.rows[0]!.amount + BOND);
      await expectSolvent(s);
    });

    it("a second dispute of the same row is refused, and so is a second request while one is in flight", async function () {
      const s = await loadFixture(disputedFixture);
      await expect(openDispute(s, s.batch, s.rows, 0))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMAlreadyDisputed")
        .withArgs(s.batch.batchId, 0n);
      await request(s);
      await expect(request(s, 0, s.payers[0]!)).to.be.revertedWithCustomError(s.oracle, "UsageOracleRequestPending");
    });

    it("verifies two disputed rows of one batch independently, then the batch releases the rest", async function () {
      const s = await loadFixture(disputedFixture);
      await openDispute(s, s.batch, s.rows, 2);
      usage(s, 0, 100_000n);
      usage(s, 2, 500_000n);
      await verify(s, 0);
      await verify(s, 2);
      const groqRefund = s.rows[2]!.amount - (s.rows[2]!.amount * 500_000n + 999_999n) / 1_000_000n;
      expect(await s.router.credits(s.groq)).to.equal(s.rows[2]!.amount - groqRefund);
      await time.increaseTo(s.batch.releaseAt);
      await s.router.release(s.batch.batchId);
      expect(await s.router.credits(s.openai)).to.equal(s.rows[0]!.amount + BOND + s.rows[1]!.amount);
      await expectSolvent(s);
    });

    it("fits the callback in the configured gas limit", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, 150_000);
      usage(s, 0, 50_000n);
      const { tx } = await verify(s);
      await expect(tx).to.emit(s.router, "DisputeResolved");
    });
  });

  describe("refundFor", function () {
    it("refunds amount - ceil(amount * reported / billed) below the billed tokens, nothing at or above", async function () {
      const s = await loadFixture(disputedFixture);
      expect(await s.oracle.refundFor(1000n, 100n, 100n)).to.equal(0n);
      expect(await s.oracle.refundFor(1000n, 100n, 10n ** 30n)).to.equal(0n);
      expect(await s.oracle.refundFor(1000n, 100n, 0n)).to.equal(1000n);
      expect(await s.oracle.refundFor(1000n, 3n, 1n)).to.equal(666n); // fair share 333.3 rounds up to 334
      expect(await s.oracle.refundFor(1n, 100n, 99n)).to.equal(0n);
      expect(await s.oracle.refundFor(2n ** 128n - 1n, 2n ** 64n - 1n, 2n ** 64n - 2n)).to.equal(
        2n ** 128n - 1n - ((2n ** 128n - 1n) * (2n ** 64n - 2n) + 2n ** 64n - 2n) / (2n ** 64n - 1n),
      );
    });
  });
});
