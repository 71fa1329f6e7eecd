import { expect } from "chai";
import { network } from "hardhat";

import {
  AGPT,
  BatchStatus,
  DisputeStatus,
  GPT4_PRICE,
  MIXTRAL_PRICE,
  deploySuite,
  expectSolvent,
  nextDisputeId,
  row,
  rowRefs,
  settle,
  type Settlement,
  type Suite,
} from "../helpers/suite.js";
import { openDispute } from "../helpers/oracle.js";
import type { Charge } from "../../relayer/batcher/rows-tree.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const BOND = 5n * AGPT;
const HOUR = 3600n;

interface Settled extends Suite {
  rows: Charge[];
  batch: Settlement;
  bucket: bigint;
}

/**
 * A settled batch of three rows in the current usage bucket: payer A on openai, payer B on openai, payer A on groq.
 * Bond 5 AGPT. No verifier: disputes are judged by the `arbiter` account here.
 */
async function settledFixture(): Promise<Settled> {
  const s = await deploySuite(ethers);
  await s.router.setDisputeBond(BOND);
  const [a, b] = s.payers;
  const rows = [
    row(a!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE), // 12 AGPT
    row(b!.address, s.openai, s.gpt4, 50_000n, GPT4_PRICE), // 6 AGPT
    row(a!.address, s.groq, s.mixtral, 1_000_000n, MIXTRAL_PRICE), // 8.5 AGPT
  ];
  const now = BigInt(await time.latest());
  const bucket = now - (now % HOUR);
  const batch = await settle(s, rows, { callsFrom: bucket });
  return { ...s, rows, batch, bucket };
}

describe("AutoPayLLM: disputes over call intervals, release and provider credits", function () {
  describe("dispute", function () {
    it("holds the named rows of the payer's interval, takes the bond and fixes the deadlines", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const depositBefore = await s.router.balanceOf(r.user);
      const id = await nextDisputeId(s, r.user, s.openai, s.gpt4, s.bucket);
      const tx = s.router.connect(s.payers[0]!).dispute(rowRefs([[s.batch, 0]]));
      await expect(tx)
        .to.emit(s.router, "DisputeOpened")
        .withArgs(id, r.user, s.openai, s.gpt4, s.bucket, 1n, BOND)
        .and.to.emit(s.router, "DisputeRowHeld")
        .withArgs(id, s.batch.batchId, 0n, r.amount);
      const openedAt = BigInt(await time.latest());
      expect(await s.router.balanceOf(r.user)).to.equal(depositBefore - BOND);
      expect(await s.router.totalBonds()).to.equal(BOND);
      const d = await s.router.disputeInfo(id);
      expect(d.status).to.equal(DisputeStatus.Open);
      expect([d.payer, d.provider, d.model, d.callsFrom, d.callsTo]).to.deep.equal([r.user, BigInt(s.openai), BigInt(s.gpt4), s.bucket, s.bucket + HOUR]);
      expect([d.rows, d.billedTokens, d.heldTokens, d.heldAmount, d.bond]).to.deep.equal([1n, r.tokens, r.tokens, r.amount, BOND]);
      expect(d.arbiterDeadline).to.equal(openedAt + 3n * 24n * HOUR);
      expect(d.governanceDeadline).to.equal(openedAt + 17n * 24n * HOUR);
      expect(await s.router.rowDispute(s.batch.batchId, 0)).to.equal(id);
      const info = await s.router.intervalInfo(r.user, s.openai, s.gpt4, s.bucket);
      expect([info.openDispute, info.disputes]).to.deep.equal([id, 1n]);
      const [provider, amount] = await s.router.batchShare(s.batch.batchId, 0);
      expect([provider, amount]).to.deep.equal([BigInt(s.openai), s.rows[1]!.amount]); // openai share without the row
      await expectSolvent(s);
    });

    it("takes the bond from the wallet allowance when the deposit is short, and fails when neither covers it", async function () {
      const s = await loadFixture(settledFixture);
      const payer = s.payers[1]!;
      await s.router.connect(payer).withdraw(await s.router.balanceOf(payer.address));
      await s.token.connect(payer).approve(s.routerAddress, 0n);
      await expect(s.router.connect(payer).dispute(rowRefs([[s.batch, 1]]))).to.be.revertedWithCustomError(
        s.router,
        "SafeERC20FailedOperation",
      );
      await s.token.connect(payer).approve(s.routerAddress, BOND);
      const wallet = await s.token.balanceOf(payer.address);
      await s.router.connect(payer).dispute(rowRefs([[s.batch, 1]]));
      expect(await s.token.balanceOf(payer.address)).to.equal(wallet - BOND);
      await expectSolvent(s);
    });

    it("scales the bond with the held amount when governance sets basis points", async function () {
      const s = await loadFixture(settledFixture);
      await s.router.setDisputeBondBps(1000); // 10%
      expect(await s.router.disputeBondFor(12n * AGPT)).to.equal(BOND + (12n * AGPT) / 10n);
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      expect((await s.router.disputeInfo(disputeId)).bond).to.equal(BOND + s.rows[0]!.amount / 10n);
    });

    it("costs one whole token by default: disputes are never free", async function () {
      const s = await deploySuite(ethers);
      expect(await s.router.disputeBond()).to.equal(AGPT);
      const noDecimals = await ethers.deployContract("MockNoReturnToken");
      const router = await ethers.deployContract("AutoPayLLM", [await noDecimals.getAddress(), s.admin.address]);
      expect(await router.disputeBond()).to.be.greaterThan(0n);
    });

    it("refuses a caller who is not the rows' payer", async function () {
      const s = await loadFixture(settledFixture);
      for (const signer of [s.stranger, s.payers[1]!, s.relayer, s.admin, s.arbiter]) {
        await expect(s.router.connect(signer).dispute(rowRefs([[s.batch, 0]])))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMNotRowPayer")
          .withArgs(signer.address, s.rows[0]!.user);
      }
    });

    it("refuses rows of another payer, provider, model or interval in the same dispute", async function () {
      const s = await loadFixture(settledFixture);
      const a = s.payers[0]!;
      // row 2 is payer A's too, but groq/mixtral
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0], [s.batch, 2]])))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMRowOutsideInterval")
        .withArgs(1n);
      // the same payer, provider and model in another bucket
      const other = await settle(s, [s.rows[0]!], { callsFrom: s.bucket - HOUR });
      const refs = rowRefs([[s.batch, 0], [other, 0]]);
      await expect(s.router.connect(a).dispute(refs)).to.be.revertedWithCustomError(s.router, "AutoPayLLMRowOutsideInterval");
      // payer B's row named by payer A
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0], [s.batch, 1]]))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMRowOutsideInterval",
      );
    });

    it("counts no row twice: rows must be strictly ordered by batch and index", async function () {
      const s = await loadFixture(settledFixture);
      const a = s.payers[0]!;
      const once = rowRefs([[s.batch, 0]])[0]!;
      await expect(s.router.connect(a).dispute([once, once]))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMRowsNotOrdered")
        .withArgs(1n);
      const second = await settle(s, [s.rows[0]!], { callsFrom: s.bucket });
      const refs = rowRefs([[s.batch, 0], [second, 0]]);
      await expect(s.router.connect(a).dispute([refs[1]!, refs[0]!])).to.be.revertedWithCustomError(s.router, "AutoPayLLMRowsNotOrdered");
      await expect(s.router.connect(a).dispute([])).to.be.revertedWithCustomError(s.router, "AutoPayLLMNoDisputeRows");
      const many = Array.from({ length: 1025 }, () => once);
      await expect(s.router.connect(a).dispute(many))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMTooManyDisputeRows")
        .withArgs(1025n, 1024n);
    });

    it("refuses forged proofs: another amount, another index, another row's proof, a rejected row", async function () {
      const s = await loadFixture(settledFixture);
      const a = s.payers[0]!;
      const base = rowRefs([[s.batch, 0]])[0]!;
      const forge = (patch: Partial<typeof base>) => s.router.connect(a).dispute([{ ...base, ...patch }]);
      await expect(forge({ charge: { ...base.charge, tokens: base.charge.tokens * 10n } }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof")
        .withArgs(s.batch.batchId, 0n);
      await expect(forge({ index: 5 })).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      await expect(forge({ proof: s.batch.tree.proof(2) })).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      await expect(forge({ proof: [] })).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      // a rejected row charged nothing and is in no tree
      const rejected = await settle(s, [{ ...s.rows[0]!, amount: 0n }], { callsFrom: s.bucket });
      const { buildRowsTree } = await import("../../relayer/batcher/rows-tree.js");
      const proof = buildRowsTree(rejected.charges).proof(0);
      await expect(s.router.connect(a).dispute([{ batchId: rejected.batchId, index: 0, charge: rejected.charges[0]!, proof }]))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
    });

    it("refuses unknown batches", async function () {
      const s = await loadFixture(settledFixture);
      const base = rowRefs([[s.batch, 0]])[0]!;
      await expect(s.router.connect(s.payers[0]!).dispute([{ ...base, batchId: ethers.id("nope") }]))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownBatch")
        .withArgs(ethers.id("nope"));
    });

    it("counts rows of closed windows and released batches, but holds only rows still in an open window", async function () {
      const s = await loadFixture(settledFixture);
      const a = s.payers[0]!;
      await time.increaseTo(s.batch.releaseAt);
      // window closed, not released yet: nothing to hold
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0]]))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNothingToHold",
      );
      await s.router.release(s.batch.batchId);
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0]]))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNothingToHold",
      );
      // the same row settled again (another batch id and receipts root) is held; the released one still counts
      const again = await settle(s, [s.rows[0]!], { callsFrom: s.bucket });
      const { disputeId } = await openDispute(s, [[s.batch, 0], [again, 0]]);
      const d = await s.router.disputeInfo(disputeId);
      expect([d.rows, d.billedTokens, d.heldTokens, d.heldAmount]).to.deep.equal([2n, 2n * s.rows[0]!.tokens, s.rows[0]!.tokens, s.rows[0]!.amount]);
      expect(await s.router.rowDispute(s.batch.batchId, 0)).to.equal(ethers.ZeroHash);
    });

    it("keeps one dispute open per interval, and never holds a row's funds twice", async function () {
      const s = await loadFixture(settledFixture);
      const a = s.payers[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0]])))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMIntervalDisputeOpen")
        .withArgs(disputeId);
      // another interval of the same payer is independent
      const other = await openDispute(s, [[s.batch, 2]]);
      expect((await s.router.disputeInfo(other.disputeId)).status).to.equal(DisputeStatus.Open);
      await s.router.connect(s.arbiter).resolveDispute(disputeId, 0n);
      // resolved: the row's funds went to the provider; naming it again holds nothing
      await expect(s.router.connect(a).dispute(rowRefs([[s.batch, 0]]))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNothingToHold",
      );
      const second = await nextDisputeId(s, a.address, s.openai, s.gpt4, s.bucket);
      expect(second).to.not.equal(disputeId);
    });

    it("keeps working while paused (payers are never locked out)", async function () {
      const s = await loadFixture(settledFixture);
      await s.router.connect(s.pauser).pause();
      await expect(s.router.connect(s.payers[0]!).dispute(rowRefs([[s.batch, 0]]))).to.emit(s.router, "DisputeOpened");
    });
  });

  describe("resolveDispute", function () {
    it("refunds all the held tokens: the held rows and the bond go back to the payer", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, r.tokens))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(disputeId, s.arbiter.address, r.tokens, r.amount, 0n, true);
      expect(await s.router.balanceOf(r.user)).to.equal(before + r.amount + BOND);
      expect(await s.router.credits(s.openai)).to.equal(0n);
      const d = await s.router.disputeInfo(disputeId);
      expect([d.status, d.overbilledTokens, d.refund]).to.deep.equal([BigInt(DisputeStatus.Resolved), r.tokens, r.amount]);
      const info = await s.router.intervalInfo(r.user, s.openai, s.gpt4, s.bucket);
      expect([info.openDispute, info.refundedTokens]).to.deep.equal([ethers.ZeroHash, r.tokens]);
      await expectSolvent(s);
    });

    it("refunds the held amount's share of the over-billed tokens, rounded down; the rest to the provider", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const overbilled = 33_333n;
      const refund = (r.amount * overbilled) / r.tokens;
      const before = await s.router.balanceOf(r.user);
      await s.router.connect(s.arbiter).resolveDispute(disputeId, overbilled);
      expect(await s.router.balanceOf(r.user)).to.equal(before + refund + BOND);
      expect(await s.router.credits(s.openai)).to.equal(r.amount - refund);
      await expectSolvent(s);
    });

    it("a dispute that finds nothing over-billed pays the held rows and the bond to the provider", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, 0n))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(disputeId, s.arbiter.address, 0n, 0n, r.amount, false);
      expect(await s.router.balanceOf(r.user)).to.equal(before);
      expect(await s.router.credits(s.openai)).to.equal(r.amount + BOND);
      await expectSolvent(s);
    });

    it("refuses more over-billed tokens than held, a second resolution and unknown disputes", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, r.tokens + 1n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMOverbilledTooLarge")
        .withArgs(r.tokens + 1n, r.tokens);
      await s.router.connect(s.arbiter).resolveDispute(disputeId, 0n);
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, 0n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeNotOpen")
        .withArgs(disputeId);
      await expect(s.router.connect(s.arbiter).resolveDispute(ethers.id("nope"), 0n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMDisputeNotOpen",
      );
    });

    it("only the arbiter until its deadline, then governance until the second deadline", async function () {
      const s = await loadFixture(settledFixture);
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const d = await s.router.disputeInfo(disputeId);
      for (const signer of [s.stranger, s.relayer, s.pauser, s.payers[0]!, s.payees[0]!]) {
        await expect(s.router.connect(signer).resolveDispute(disputeId, 1n))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMNotResolver")
          .withArgs(signer.address, d.arbiterDeadline, d.governanceDeadline);
      }
      await time.increaseTo(d.arbiterDeadline);
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, 1n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      await expect(s.router.connect(s.admin).resolveDispute(disputeId, 1n)).to.emit(s.router, "DisputeResolved");
    });

    it("keeps the deadlines a dispute was opened with when governance changes the timeouts (fails on the previous code, which read them live)", async function () {
      const s = await loadFixture(settledFixture);
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const before = await s.router.disputeInfo(disputeId);
      await s.router.setDisputeTimeouts(3600, 3600);
      const after = await s.router.disputeInfo(disputeId);
      expect([after.arbiterDeadline, after.governanceDeadline]).to.deep.equal([before.arbiterDeadline, before.governanceDeadline]);
      await time.increase(2n * HOUR + 1n);
      // with the new, shorter timeouts the arbiter's time would be over; the dispute keeps its own
      await expect(s.router.connect(s.arbiter).resolveDispute(disputeId, 0n)).to.emit(s.router, "DisputeResolved");
    });
  });

  describe("settleExpiredDispute", function () {
    it("P1: a payer who disputes and then does nothing does not escape the charge (fails on the previous code, which refunded in full)", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const { disputeId } = await openDispute(s, [[s.batch, 0]]);
      const d = await s.router.disputeInfo(disputeId);
      await expect(s.router.connect(s.stranger).settleExpiredDispute(disputeId))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeNotExpired")
        .withArgs(disputeId, d.governanceDeadline);
      await time.increaseTo(d.governanceDeadline);
      await expect(s.router.connect(s.admin).resolveDispute(disputeId, 0n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.stranger).settleExpiredDispute(disputeId))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(disputeId, s.stranger.address, 0n, 0n, r.amount, true);
      // the charge stands: the row goes to the provider; the bond comes back (the payer was not proven wrong)
      expect(await s.router.balanceOf(r.user)).to.equal(before + BOND);
      expect(await s.router.credits(s.openai)).to.equal(r.amount);
      expect((await s.router.disputeInfo(disputeId)).status).to.equal(DisputeStatus.Expired);
      await expect(s.router.settleExpiredDispute(disputeId)).to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeNotOpen");
      await expectSolvent(s);
    });
  });

  describe("release", function () {
    it("credits providers after the window; anyone may call; once", async function () {
      const s = await loadFixture(settledFixture);
      await expect(s.router.connect(s.stranger).release(s.batch.batchId))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMWindowOpen")
        .withArgs(s.batch.batchId, s.batch.releaseAt);
      await time.increaseTo(s.batch.releaseAt);
      const openaiShare = s.rows[0]!.amount + s.rows[1]!.amount;
      const groqShare = s.rows[2]!.amount;
      await expect(s.router.connect(s.stranger).release(s.batch.batchId))
        .to.emit(s.router, "ProviderCredited")
        .withArgs(s.batch.batchId, s.openai, openaiShare)
        .and.to.emit(s.router, "ProviderCredited")
        .withArgs(s.batch.batchId, s.groq, groqShare)
        .and.to.emit(s.router, "BatchReleased")
        .withArgs(s.batch.batchId, openaiShare + groqShare);
      expect(await s.router.credits(s.openai)).to.equal(openaiShare);
      expect(await s.router.credits(s.groq)).to.equal(groqShare);
      expect(await s.router.totalEscrow()).to.equal(0n);
      expect((await s.router.batchInfo(s.batch.batchId)).status).to.equal(BatchStatus.Released);
      await expect(s.router.release(s.batch.batchId))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchNotEscrowed")
        .withArgs(s.batch.batchId, BatchStatus.Released);
      await expectSolvent(s);
    });

    it("holds disputed rows back until they are resolved", async function () {
      const s = await loadFixture(settledFixture);
      await openDispute(s, [[s.batch, 0]]);
      const { disputeId } = await openDispute(s, [[s.batch, 2]]); // groq fully disputed
      await time.increaseTo(s.batch.releaseAt);
      await s.router.release(s.batch.batchId);
      expect(await s.router.credits(s.openai)).to.equal(s.rows[1]!.amount);
      expect(await s.router.credits(s.groq)).to.equal(0n);
      expect(await s.router.totalEscrow()).to.equal(s.rows[0]!.amount + s.rows[2]!.amount);
      await s.router.connect(s.arbiter).resolveDispute(disputeId, 0n);
      expect(await s.router.credits(s.groq)).to.equal(s.rows[2]!.amount + BOND);
      await expectSolvent(s);
    });

    it("waits while paused", async function () {
      const s = await loadFixture(settledFixture);
      await time.increaseTo(s.batch.releaseAt);
      await s.router.connect(s.pauser).pause();
      await expect(s.router.release(s.batch.batchId)).to.be.revertedWithCustomError(s.router, "EnforcedPause");
    });

    it("refuses an unknown batch", async function () {
      const s = await loadFixture(settledFixture);
      await expect(s.router.release(ethers.id("unknown")))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchNotEscrowed")
        .withArgs(ethers.id("unknown"), BatchStatus.None);
      await expect(s.router.disputeClosesAt(ethers.id("unknown")))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownBatch")
        .withArgs(ethers.id("unknown"));
      expect(await s.router.disputeClosesAt(s.batch.batchId)).to.equal(s.batch.releaseAt);
    });
  });

  describe("withdrawCredits", function () {
    async function released(): Promise<Settled> {
      const s = await settledFixture();
      await time.increaseTo(s.batch.releaseAt);
      await s.router.release(s.batch.batchId);
      return s;
    }

    it("pays the registered payee once, also while paused", async function () {
      const s = await loadFixture(released);
      const payee = s.payees[0]!;
      const amount = await s.router.credits(s.openai);
      await s.router.connect(s.pauser).pause();
      const wallet = await s.token.balanceOf(payee.address);
      await expect(s.router.connect(payee).withdrawCredits(s.openai))
        .to.emit(s.router, "CreditsWithdrawn")
        .withArgs(s.openai, payee.address, amount);
      expect(await s.token.balanceOf(payee.address)).to.equal(wallet + amount);
      expect(await s.router.credits(s.openai)).to.equal(0n);
      await expect(s.router.connect(payee).withdrawCredits(s.openai))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMNothingToWithdraw")
        .withArgs(s.openai);
      await expectSolvent(s);
    });

    it("refuses anyone but the payee, and unknown providers", async function () {
      const s = await loadFixture(released);
      for (const signer of [s.stranger, s.payees[1]!, s.relayer, s.admin]) {
        await expect(s.router.connect(signer).withdrawCredits(s.openai))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMNotPayee")
          .withArgs(s.openai, signer.address);
      }
      await expect(s.router.withdrawCredits(9))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownProvider")
        .withArgs(9n);
    });

    it("follows a payee change made by governance", async function () {
      const s = await loadFixture(released);
      await expect(s.router.setProviderPayee(s.openai, s.stranger.address))
        .to.emit(s.router, "ProviderPayeeSet")
        .withArgs(s.openai, s.stranger.address);
      await expect(s.router.connect(s.payees[0]!).withdrawCredits(s.openai)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotPayee",
      );
      await expect(s.router.connect(s.stranger).withdrawCredits(s.openai)).to.emit(s.router, "CreditsWithdrawn");
    });
  });
});
