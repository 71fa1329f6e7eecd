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
  type SentRequest,
} from "../helpers/oracle.js";
import { AGPT, DisputeStatus, expectSolvent, GPT4_PRICE, row, settle, type Settlement } from "../helpers/suite.js";
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
  /** payer A's gpt-4-turbo row on openai: 100,000 tokens, 12 AGPT */
  charge: Charge;
  batch: Settlement;
  /** the usage bucket [bucket, bucket + 1 h) the batch committed */
  bucket: bigint;
  disputeId: string;
  /** the request the dispute sent itself */
  sent: SentRequest;
}

/** The start of the usage bucket two hours before the chain's time: the calls of the fixture's batches. */
async function pastBucket(): Promise<bigint> {
  const now = BigInt(await time.latest());
  return now - (now % HOUR) - 2n * HOUR;
}

/**
 * One batch with payer A's 100,000 gpt-4-turbo tokens (12 AGPT), its calls in a bucket two hours back, disputed by
 * payer A; the oracle is the router's verifier, so the dispute sent its request.
 */
async function disputedFixture(): Promise<Disputed> {
  const s = await deployOracleSuite(ethers, server.url);
  await s.router.setDisputeBond(BOND);
  const bucket = await pastBucket();
  const charge = row(s.payers[0]!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE);
  const batch = await settle(s, [charge], { callsFrom: bucket });
  const { disputeId, tx } = await openDispute(s, [[batch, 0]]);
  return { ...s, charge, batch, bucket, disputeId, sent: await sentRequest(s, tx) };
}

/** Records provider-side usage of payer A (or `payer`) for gpt-4-turbo on openai at `at`. */
function usage(s: OracleSuite, tokens: bigint, at: bigint, payer = s.payers[0]!.address) {
  server.add({ provider: "openai", model: "gpt-4-turbo", payer, at: Number(at), tokens });
}

/** Moves the chain to when the dispute's next request may be sent. */
async function retryTime(s: Disputed) {
  const at = (await s.oracle.verificationOf(s.disputeId)).sentAt + (await s.oracle.requestTimeout());
  if (BigInt(await time.latest()) < at) await time.increaseTo(at);
}

async function request(s: Disputed, signer = s.keeper): Promise<SentRequest> {
  return sentRequest(s, await s.oracle.connect(signer).requestVerification(s.disputeId));
}

/** The DON's loop for a sent request: run the source in Node against the usage server, deliver the answer. */
async function answer(s: OracleSuite, sent: SentRequest) {
  const result = await runRequest(sent);
  return { result, tx: await deliver(s, sent, result) };
}

/** Settles `charges` of payer A in `bucket` (a batch of its own). */
function settleIn(s: OracleSuite, bucket: bigint, charges: Charge[]) {
  return settle(s, charges, { callsFrom: bucket });
}

/** Opens a dispute naming `rows` and runs the request it sent to its answer. */
async function disputeAndAnswer(s: OracleSuite, rows: Array<[Settlement, number]>) {
  const { disputeId, tx } = await openDispute(s, rows);
  const { tx: answered } = await answer(s, await sentRequest(s, tx));
  return { disputeId, answered };
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
    it("P1: opening a dispute sends the request itself: the source, the dispute's provider, model, payer and interval, the secrets", async function () {
      const s = await loadFixture(disputedFixture);
      expect(s.sent.subscriptionId).to.equal(SUBSCRIPTION_ID);
      expect(s.sent.donId).to.equal(DON_ID);
      expect(s.sent.callbackGasLimit).to.equal(BigInt(CALLBACK_GAS));
      const decoded = decodeRequest(s.sent.data);
      expect(decoded.source).to.equal(SOURCE);
      expect(decoded.codeLocation).to.equal(0);
      expect(decoded.secretsLocation).to.equal(2); // DON-hosted
      expect(decoded.args).to.deep.equal([
        server.url,
        "openai",
        "gpt-4-turbo",
        s.charge.user.toLowerCase(),
        s.bucket.toString(),
        (s.bucket + HOUR).toString(),
      ]);
      expect(await s.oracle.requestArgs(s.disputeId)).to.deep.equal(decoded.args);
      const v = await s.oracle.verificationOf(s.disputeId);
      expect([v.requestId, v.attempts]).to.deep.equal([s.sent.requestId, 1n]);
      expect((await s.oracle.requestOf(s.sent.requestId)).disputeId).to.equal(s.disputeId);
      void SECRETS_VERSION;
    });

    it("P1: anyone may start or retry a verification: the provider's payee, the relayer, a keeper (fails on the previous code: only the payer or REQUESTER_ROLE)", async function () {
      const s = await loadFixture(disputedFixture);
      server.override = (_query, res) => (send(res, 503, { error: "maintenance" }), true);
      await expect((await answer(s, s.sent)).tx).to.emit(s.oracle, "VerificationFailed");
      for (const signer of [s.payees[0]!, s.relayer]) {
        await retryTime(s);
        const sent = await request(s, signer);
        await expect((await answer(s, sent)).tx).to.emit(s.oracle, "VerificationFailed");
      }
      expect((await s.oracle.verificationOf(s.disputeId)).attempts).to.equal(3n);
      server.override = undefined;
      usage(s, 100_000n, s.bucket);
      await s.oracle.setVerificationParams(900, 4, 0);
      await retryTime(s);
      await expect((await answer(s, await request(s, s.stranger))).tx).to.emit(s.router, "DisputeResolved");
    });
    it("opens the dispute even when the verification cannot start, and it can be started later", async function () {
      const s = await deployOracleSuite(ethers, server.url);
      const bare = await ethers.deployContract("UsageOracle", [s.routerAddress, await s.functionsRouter.getAddress(), s.admin.address]);
      await s.router.grantRole(await s.router.ARBITER_ROLE(), await bare.getAddress());
      await s.router.setVerifier(await bare.getAddress()); // not configured: its request reverts
      const batch = await settleIn(s, await pastBucket(), [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)]);
      const { disputeId, tx } = await openDispute(s, [[batch, 0]]);
      await expect(tx).to.emit(s.router, "DisputeOpened").and.not.to.emit(bare, "VerificationRequested");
      await expect(bare.requestVerification(disputeId)).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setSource(SOURCE);
      await expect(bare.requestVerification(disputeId)).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setUsageApi(server.url);
      await expect(bare.requestVerification(disputeId)).to.be.revertedWithCustomError(bare, "UsageOracleNotConfigured");
      await bare.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, CALLBACK_GAS);
      await expect(bare.connect(s.payees[0]!).requestVerification(disputeId)).to.emit(bare, "VerificationRequested");
    });

    it("refuses a dispute that is unknown or no longer open", async function () {
      const s = await loadFixture(disputedFixture);
      await expect(s.oracle.requestVerification(ethers.id("nope")))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleDisputeNotOpen")
        .withArgs(ethers.id("nope"));
      await s.router.connect(s.admin).resolveDispute(s.disputeId, 0n);
      await expect(request(s)).to.be.revertedWithCustomError(s.oracle, "UsageOracleDisputeNotOpen");
    });

    it("refuses once the dispute's arbiter deadline has passed", async function () {
      const s = await loadFixture(disputedFixture);
      const deadline = (await s.router.disputeInfo(s.disputeId)).arbiterDeadline;
      await time.increaseTo(deadline);
      await expect(request(s)).to.be.revertedWithCustomError(s.oracle, "UsageOracleDeadlinePassed").withArgs(s.disputeId, deadline);
    });

    it("keeps one request in flight; allows a retry after requestTimeout; refuses the lost request's late answer", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 100_000n, s.bucket);
      const retryAt = (await s.oracle.verificationOf(s.disputeId)).sentAt + (await s.oracle.requestTimeout());
      await expect(request(s))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleRequestPending")
        .withArgs(s.disputeId, s.sent.requestId, retryAt);
      await time.increaseTo(retryAt);
      const second = await request(s);
      expect((await s.oracle.verificationOf(s.disputeId)).attempts).to.equal(2n);
      await expect(deliver(s, s.sent, await runRequest(s.sent)))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(s.sent.requestId);
      await expect((await answer(s, second)).tx).to.emit(s.oracle, "UsageVerified");
    });

    it("stops after maxAttempts requests for one dispute", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(300, 2, 0);
      server.override = (_query, res) => (send(res, 503, { error: "maintenance" }), true);
      await expect((await answer(s, s.sent)).tx).to.emit(s.oracle, "VerificationFailed");
      // answered (failed) or not, the next request waits requestTimeout: attempts cannot be burnt in a burst
      const retryAt = (await s.oracle.verificationOf(s.disputeId)).sentAt + 300n;
      await expect(request(s))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleRequestPending")
        .withArgs(s.disputeId, ethers.ZeroHash, retryAt);
      await retryTime(s);
      await expect((await answer(s, await request(s))).tx).to.emit(s.oracle, "VerificationFailed");
      await retryTime(s);
      await expect(request(s)).to.be.revertedWithCustomError(s.oracle, "UsageOracleTooManyAttempts").withArgs(s.disputeId, 2);
    });
  });

  describe("fulfilment", function () {
    it("refunds the tokens billed beyond the provider's report for the interval; returns the bond; the rest to the provider", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 60_000n, s.bucket); // first second of the interval: inside
      usage(s, 999_999n, s.bucket + HOUR); // the interval's end: outside
      usage(s, 999_999n, s.bucket - 1n); // before it
      const before = await s.router.balanceOf(s.charge.user);
      const { result, tx } = await answer(s, s.sent);
      expect(result.error).to.equal(undefined);
      const refund = (s.charge.amount * 40_000n) / 100_000n;
      await expect(tx)
        .to.emit(s.oracle, "UsageVerified")
        .withArgs(s.disputeId, s.sent.requestId, 100_000n, 60_000n, 40_000n)
        .and.to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, await s.oracle.getAddress(), 40_000n, refund, s.charge.amount - refund, true);
      expect(await s.router.balanceOf(s.charge.user)).to.equal(before + refund + BOND);
      expect(await s.router.credits(s.openai)).to.equal(s.charge.amount - refund);
      expect((await s.router.disputeInfo(s.disputeId)).status).to.equal(DisputeStatus.Resolved);
      expect((await s.oracle.verificationOf(s.disputeId)).requestId).to.equal(ethers.ZeroHash);
      expect(server.queries).to.have.length(1);
      await expectSolvent(s);
    });

    it("refunds the whole row when the provider reports no usage", async function () {
      const s = await loadFixture(disputedFixture);
      await expect((await answer(s, s.sent)).tx)
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, await s.oracle.getAddress(), 100_000n, s.charge.amount, 0n, true);
      await expectSolvent(s);
    });

    it("rejects the dispute when the provider reports at least the billed tokens: the row and the bond to the provider", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 70_000n, s.bucket + 10n);
      usage(s, 30_000n, s.bucket + HOUR - 1n); // last second of the interval
      const before = await s.router.balanceOf(s.charge.user);
      await expect((await answer(s, s.sent)).tx)
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, await s.oracle.getAddress(), 0n, 0n, s.charge.amount, false);
      expect(await s.router.balanceOf(s.charge.user)).to.equal(before);
      expect(await s.router.credits(s.openai)).to.equal(s.charge.amount + BOND);
      await expectSolvent(s);
    });

    it("treats an excess within the governed tolerance as no overcharge, and refunds one just beyond it", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(900, 3, 100); // 1%
      expect(await s.oracle.overbilledFor(s.disputeId, 99_000n)).to.equal(0n);
      expect(await s.oracle.overbilledFor(s.disputeId, 98_999n)).to.equal(1001n);
      usage(s, 99_000n, s.bucket);
      await expect((await answer(s, s.sent)).tx)
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, await s.oracle.getAddress(), 0n, 0n, s.charge.amount, false);
    });

    it("refuses an answer from anyone but the Functions router, for an unknown request, or replayed", async function () {
      const s = await loadFixture(disputedFixture);
      const word = ethers.zeroPadValue("0x00", 32);
      for (const signer of [s.stranger, s.admin, s.arbiter, s.payers[0]!]) {
        await expect(s.oracle.connect(signer).handleOracleFulfillment(s.sent.requestId, word, "0x")).to.be.revertedWithCustomError(
          s.oracle,
          "OnlyRouterCanFulfill",
        );
      }
      const unknown = ethers.id("never sent");
      await expect(s.functionsRouter.fulfillUnchecked(await s.oracle.getAddress(), unknown, word, "0x"))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(unknown);
      await answer(s, s.sent);
      await expect(s.functionsRouter.fulfillUnchecked(await s.oracle.getAddress(), s.sent.requestId, word, "0x"))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnknownRequest")
        .withArgs(s.sent.requestId);
    });

    it("keeps the dispute open on a Functions error or a malformed response, and succeeds on a retry", async function () {
      const s = await loadFixture(disputedFixture);
      await s.oracle.setVerificationParams(900, 10, 0);
      const failed = await runRequest(s.sent, { usageApiKey: "wrong-key" });
      expect(failed.error).to.equal("usage API answered HTTP 401");
      await expect(deliver(s, s.sent, failed))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.disputeId, s.sent.requestId, FailureReason.FunctionsError, ethers.toUtf8Bytes(failed.error!));
      for (const response of ["0x", "0x01", ethers.concat([ethers.zeroPadValue("0x01", 32), ethers.zeroPadValue("0x01", 32)])]) {
        await retryTime(s);
        const sent = await request(s);
        await expect(s.functionsRouter.fulfill(sent.requestId, response, "0x"))
          .to.emit(s.oracle, "VerificationFailed")
          .withArgs(s.disputeId, sent.requestId, FailureReason.MalformedResponse, "0x");
      }
      expect((await s.router.disputeInfo(s.disputeId)).status).to.equal(DisputeStatus.Open);
      usage(s, 100_000n, s.bucket);
      await retryTime(s);
      await expect((await answer(s, await request(s))).tx).to.emit(s.router, "DisputeResolved");
    });

    it("drops an answer for a dispute governance resolved meanwhile", async function () {
      const s = await loadFixture(disputedFixture);
      await s.router.connect(s.admin).resolveDispute(s.disputeId, 1n);
      await expect(deliver(s, s.sent, await runRequest(s.sent)))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.disputeId, s.sent.requestId, FailureReason.DisputeClosed, "0x");
      await expectSolvent(s);
    });

    it("drops a valid answer that arrives after the arbiter deadline: governance judges now", async function () {
      const s = await loadFixture(disputedFixture);
      usage(s, 1n, s.bucket);
      const result = await runRequest(s.sent);
      await time.increaseTo((await s.router.disputeInfo(s.disputeId)).arbiterDeadline);
      await expect(deliver(s, s.sent, result))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.disputeId, s.sent.requestId, FailureReason.DeadlinePassed, "0x");
      await expect(s.router.connect(s.admin).resolveDispute(s.disputeId, 50_000n))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, s.admin.address, 50_000n, s.charge.amount / 2n, s.charge.amount / 2n, true);
      await expectSolvent(s);
    });

    it("P1: after the arbiter deadline the late answer is dropped and governance judges; past governance's deadline the charge stands", async function () {
      const s = await loadFixture(disputedFixture);
      server.override = (_query, res) => (res.destroy(), true); // the usage API hangs up
      const result = await runRequest(s.sent);
      expect(result.error).to.equal("usage API unreachable");
      const d = await s.router.disputeInfo(s.disputeId);
      await time.increaseTo(d.arbiterDeadline);
      await expect(deliver(s, s.sent, result))
        .to.emit(s.oracle, "VerificationFailed")
        .withArgs(s.disputeId, s.sent.requestId, FailureReason.FunctionsError, ethers.toUtf8Bytes(result.error!));
      const oracleAsSigner = await ethers.getImpersonatedSigner(await s.oracle.getAddress());
      await networkHelpers.setBalance(oracleAsSigner.address, 10n ** 18n);
      await expect(s.router.connect(oracleAsSigner).resolveDispute(s.disputeId, 1n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      await time.increaseTo(d.governanceDeadline);
      const before = await s.router.balanceOf(s.charge.user);
      await expect(s.router.connect(s.stranger).settleExpiredDispute(s.disputeId))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.disputeId, s.stranger.address, 0n, 0n, s.charge.amount, true);
      expect(await s.router.balanceOf(s.charge.user)).to.equal(before + BOND);
      expect(await s.router.credits(s.openai)).to.equal(s.charge.amount);
      await expectSolvent(s);
    });
  });

  describe("P2: an overcharge is refunded whatever else was billed (each case fails on the previous code, which compared one row with the payer's whole usage)", function () {
    /** Payer A's honest 100,000 tokens in one bucket, reported by the provider, settled in batch 1. */
    async function honestFixture() {
      const s = await deployOracleSuite(ethers, server.url);
      await s.router.setDisputeBond(BOND);
      const bucket = await pastBucket();
      const honest = row(s.payers[0]!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE);
      const first = await settleIn(s, bucket, [honest]);
      return { ...s, bucket, honest, first };
    }

    it("the same receipts settled again under another batch id: the copy is refunded to the token unit", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      const copy = await settleIn(s, s.bucket, [s.honest]);
      const before = await s.router.balanceOf(s.honest.user);
      const { answered } = await disputeAndAnswer(s, [[s.first, 0], [copy, 0]]);
      await expect(answered).to.emit(s.router, "DisputeResolved");
      expect(await s.router.balanceOf(s.honest.user)).to.equal(before - BOND + s.honest.amount + BOND);
      expect(await s.router.credits(s.openai)).to.equal(s.honest.amount);
      await expectSolvent(s);
    });

    it("a duplicated row within one batch: one copy is refunded", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 200_000n, s.bucket + 5n); // the payer's honest usage: batch 1 plus one of the two rows below
      const dup = await settleIn(s, s.bucket, [s.honest, s.honest]);
      const { disputeId } = await disputeAndAnswer(s, [[s.first, 0], [dup, 0], [dup, 1]]);
      const d = await s.router.disputeInfo(disputeId);
      expect([d.billedTokens, d.heldTokens, d.overbilledTokens, d.refund]).to.deep.equal([300_000n, 300_000n, 100_000n, s.honest.amount]);
      await expectSolvent(s);
    });

    it("a 10x inflated row next to honest usage: exactly the inflation is refunded", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      usage(s, 20_000n, s.bucket + 1800n);
      const inflated = row(s.payers[0]!.address, s.openai, s.gpt4, 200_000n, GPT4_PRICE); // 20,000 real tokens x 10
      const second = await settleIn(s, s.bucket, [inflated]);
      const { disputeId } = await disputeAndAnswer(s, [[s.first, 0], [second, 0]]);
      const d = await s.router.disputeInfo(disputeId);
      expect(d.overbilledTokens).to.equal(180_000n);
      // GPT4_PRICE is 0.12 AGPT per 1k tokens exactly: the refund is the inflated tokens' price to the unit
      expect(d.refund).to.equal((180_000n * GPT4_PRICE) / 1000n);
      await expectSolvent(s);
    });

    it("a row billed for calls that never happened, beside honest usage in the same interval", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      const fake = row(s.payers[0]!.address, s.openai, s.gpt4, 30_000n, GPT4_PRICE);
      const second = await settleIn(s, s.bucket, [fake]);
      const { disputeId } = await disputeAndAnswer(s, [[s.first, 0], [second, 0]]);
      expect((await s.router.disputeInfo(disputeId)).refund).to.equal(fake.amount);
      // the honest row went to the provider
      expect(await s.router.credits(s.openai)).to.equal(s.honest.amount);
    });

    it("counts released rows: a copy settled after the honest batch was paid out is still refunded", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      await time.increaseTo((await s.router.batchInfo(s.first.batchId)).releaseAt);
      await s.router.release(s.first.batchId);
      const copy = await settleIn(s, s.bucket, [s.honest]);
      const { disputeId } = await disputeAndAnswer(s, [[s.first, 0], [copy, 0]]);
      const d = await s.router.disputeInfo(disputeId);
      expect([d.billedTokens, d.heldTokens, d.refund]).to.deep.equal([200_000n, 100_000n, s.honest.amount]);
    });

    it("a copy settled after an earlier dispute of the interval: a second dispute refunds it, never the first refund again", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      const copy1 = await settleIn(s, s.bucket, [s.honest]);
      const first = await disputeAndAnswer(s, [[s.first, 0], [copy1, 0]]);
      expect((await s.router.disputeInfo(first.disputeId)).refund).to.equal(s.honest.amount);
      const copy2 = await settleIn(s, s.bucket, [s.honest]);
      const second = await disputeAndAnswer(s, [[s.first, 0], [copy1, 0], [copy2, 0]]);
      const d = await s.router.disputeInfo(second.disputeId);
      expect([d.billedTokens, d.priorRefundedTokens, d.heldTokens, d.overbilledTokens, d.refund]).to.deep.equal([
        300_000n,
        100_000n,
        100_000n,
        100_000n,
        s.honest.amount,
      ]);
      const info = await s.router.intervalInfo(s.honest.user, s.openai, s.gpt4, s.bucket);
      expect(info.refundedTokens).to.equal(200_000n);
      // nothing more to take: an honest third dispute finds nothing held
      await expect(s.router.connect(s.payers[0]!).dispute((await import("../helpers/suite.js")).rowRefs([[s.first, 0], [copy1, 0], [copy2, 0]])))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMNothingToHold");
      await expectSolvent(s);
    });

    it("a payer gains nothing by leaving rows out: naming only the copy is judged honest and costs the bond", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      const copy = await settleIn(s, s.bucket, [s.honest]);
      const before = await s.router.balanceOf(s.honest.user);
      const { disputeId } = await disputeAndAnswer(s, [[copy, 0]]);
      expect((await s.router.disputeInfo(disputeId)).refund).to.equal(0n);
      expect(await s.router.balanceOf(s.honest.user)).to.equal(before - BOND);
    });

    it("a dispute of honest usage costs the disputer its bond", async function () {
      const s = await loadFixture(honestFixture);
      usage(s, 100_000n, s.bucket + 5n);
      const before = await s.router.balanceOf(s.honest.user);
      await disputeAndAnswer(s, [[s.first, 0]]);
      expect(await s.router.balanceOf(s.honest.user)).to.equal(before - BOND);
      expect(await s.router.credits(s.openai)).to.equal(s.honest.amount + BOND);
    });
  });

  describe("P3: time is the calls' time", function () {
    it("a batch settled hours late, after a pause, is judged exactly like one settled on time (fails on the previous code: every late row was refunded in full)", async function () {
      const s = await deployOracleSuite(ethers, server.url);
      await s.router.setDisputeBond(BOND);
      const bucket = await pastBucket();
      const honest = row(s.payers[0]!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE);
      usage(s, 100_000n, bucket + 10n);
      await s.router.connect(s.pauser).pause();
      await time.increase(6n * HOUR);
      await s.router.connect(s.pauser).unpause();
      const late = await settleIn(s, bucket, [honest]);
      expect((await s.router.batchInfo(late.batchId)).settledAt - bucket).to.be.greaterThan(6n * HOUR);
      const before = await s.router.balanceOf(honest.user);
      const { disputeId } = await disputeAndAnswer(s, [[late, 0]]);
      expect(await s.oracle.requestArgs(disputeId)).to.include(bucket.toString());
      expect((await s.router.disputeInfo(disputeId)).refund).to.equal(0n);
      expect(await s.router.balanceOf(honest.user)).to.equal(before - BOND);
    });

    it("refuses a bucket that is not aligned or lies in the future", async function () {
      const s = await deployOracleSuite(ethers, server.url);
      const charge = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const now = BigInt(await time.latest());
      const next = now - (now % HOUR) + HOUR;
      await expect(settle(s, [charge], { callsFrom: next }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidInterval")
        .withArgs(next, HOUR);
      await expect(settle(s, [charge], { callsFrom: next - HOUR + 1n })).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidInterval");
    });
  });
});
