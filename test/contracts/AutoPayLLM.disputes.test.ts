import { expect } from "chai";
import { network } from "hardhat";

import type { Charge } from "../../relayer/batcher/rows-tree.js";
import {
  AGPT,
  BatchStatus,
  DisputeStatus,
  GPT4_PRICE,
  MIXTRAL_PRICE,
  deploySuite,
  expectSolvent,
  row,
  settle,
  type Settlement,
  type Suite,
} from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const BOND = 5n * AGPT;

interface Settled extends Suite {
  rows: Charge[];
  batch: Settlement;
}

/** A settled batch of three rows: payer A on openai, payer B on openai, payer A on groq. Bond 5 AGPT. */
async function settledFixture(): Promise<Settled> {
  const s = await deploySuite(ethers);
  await s.router.setDisputeBond(BOND);
  const [a, b] = s.payers;
  const rows = [
    row(a!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE), // 12 AGPT
    row(b!.address, s.openai, s.gpt4, 50_000n, GPT4_PRICE), // 6 AGPT
    row(a!.address, s.groq, s.mixtral, 1_000_000n, MIXTRAL_PRICE), // 8.5 AGPT
  ];
  const batch = await settle(s, rows);
  return { ...s, rows, batch };
}

async function openDispute(s: Settled, index: number) {
  const r = s.rows[index]!;
  const payer = s.payers.find((p) => p.address === r.user)!;
  return s.router.connect(payer).dispute(s.batch.batchId, index, r, s.batch.tree.proof(index));
}

describe("AutoPayLLM: disputes, release and provider credits", function () {
  describe("dispute", function () {
    it("lets the row's payer dispute it within the window with a proof, holding the row and a bond", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const depositBefore = await s.router.balanceOf(r.user);
      await expect(openDispute(s, 0))
        .to.emit(s.router, "DisputeOpened")
        .withArgs(s.batch.batchId, 0n, r.user, s.openai, r.amount, BOND);
      expect(await s.router.balanceOf(r.user)).to.equal(depositBefore - BOND);
      expect(await s.router.totalBonds()).to.equal(BOND);
      const record = await s.router.disputeInfo(s.batch.batchId, 0);
      expect(record.status).to.equal(DisputeStatus.Open);
      expect(record.amount).to.equal(r.amount);
      const [, amounts] = await s.router.batchShares(s.batch.batchId);
      expect(amounts[0]).to.equal(s.rows[1]!.amount); // openai share without the disputed row
      await expectSolvent(s);
    });

    it("takes the bond from the wallet allowance when the deposit is short", async function () {
      const s = await loadFixture(settledFixture);
      const payer = s.payers[1]!;
      await s.router.connect(payer).withdraw(await s.router.balanceOf(payer.address));
      await s.token.connect(payer).approve(s.routerAddress, BOND);
      const wallet = await s.token.balanceOf(payer.address);
      await openDispute(s, 1);
      expect(await s.token.balanceOf(payer.address)).to.equal(wallet - BOND);
      await expectSolvent(s);
    });

    it("fails when the bond can be paid neither from deposit nor allowance", async function () {
      const s = await loadFixture(settledFixture);
      const payer = s.payers[1]!;
      await s.router.connect(payer).withdraw(await s.router.balanceOf(payer.address));
      await s.token.connect(payer).approve(s.routerAddress, 0n);
      await expect(openDispute(s, 1)).to.be.revertedWithCustomError(s.router, "SafeERC20FailedOperation");
    });

    it("scales the bond with the disputed amount when governance sets basis points", async function () {
      const s = await loadFixture(settledFixture);
      await s.router.setDisputeBondBps(1000); // 10%
      expect(await s.router.disputeBondFor(12n * AGPT)).to.equal(BOND + (12n * AGPT) / 10n);
      await expect(openDispute(s, 0))
        .to.emit(s.router, "DisputeOpened")
        .withArgs(s.batch.batchId, 0n, s.rows[0]!.user, s.openai, s.rows[0]!.amount, BOND + s.rows[0]!.amount / 10n);
    });

    it("refuses a stranger: only the row's payer may dispute", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      for (const signer of [s.stranger, s.payers[1]!, s.relayer, s.admin]) {
        await expect(s.router.connect(signer).dispute(s.batch.batchId, 0, r, s.batch.tree.proof(0)))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMNotRowPayer")
          .withArgs(signer.address, r.user);
      }
    });

    it("refuses a dispute once the window has closed", async function () {
      const s = await loadFixture(settledFixture);
      await time.increaseTo(s.batch.releaseAt);
      await expect(openDispute(s, 0))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMWindowClosed")
        .withArgs(s.batch.batchId, s.batch.releaseAt);
    });

    it("refuses disputing the same row twice", async function () {
      const s = await loadFixture(settledFixture);
      await openDispute(s, 0);
      await expect(openDispute(s, 0))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMAlreadyDisputed")
        .withArgs(s.batch.batchId, 0n);
    });

    it("refuses forged proofs: another amount, another index, another row's proof", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      const payer = s.payers[0]!;
      const dispute = (index: number, charge: Charge, proof: string[]) =>
        s.router.connect(payer).dispute(s.batch.batchId, index, charge, proof);
      await expect(dispute(0, { ...r, amount: r.amount + 1n }, s.batch.tree.proof(0)))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof")
        .withArgs(s.batch.batchId, 0n);
      // the same row under another index: the index is inside the leaf
      await expect(dispute(5, r, s.batch.tree.proof(0))).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      await expect(dispute(0, r, s.batch.tree.proof(2))).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      await expect(dispute(0, r, [])).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidProof");
      // row 2 is payer A's too: proving it under index 0 fails
      await expect(dispute(0, s.rows[2]!, s.batch.tree.proof(2))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidProof",
      );
    });

    it("refuses a rejected row: it charged nothing and is in no tree", async function () {
      const s = await loadFixture(fixture2);
      const [rows, batch] = [s.rows, s.batch];
      const payer = s.payers[0]!;
      // row 1 was rejected (zero amount); a proof built as if it were accepted does not verify
      const { buildRowsTree } = await import("../../relayer/batcher/rows-tree.js");
      const forged = buildRowsTree(rows);
      await expect(s.router.connect(payer).dispute(batch.batchId, 1, rows[1]!, forged.proof(1))).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidProof",
      );
    });

    it("refuses unknown and released batches", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await expect(s.router.connect(s.payers[0]!).dispute(ethers.id("nope"), 0, r, []))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchNotEscrowed")
        .withArgs(ethers.id("nope"), BatchStatus.None);
      await time.increaseTo(s.batch.releaseAt);
      await s.router.release(s.batch.batchId);
      await expect(openDispute(s, 0))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchNotEscrowed")
        .withArgs(s.batch.batchId, BatchStatus.Released);
    });

    it("keeps working while paused (payers are never locked out)", async function () {
      const s = await loadFixture(settledFixture);
      await s.router.connect(s.pauser).pause();
      await expect(openDispute(s, 0)).to.emit(s.router, "DisputeOpened");
    });
  });

  describe("resolveDispute", function () {
    it("a full refund returns the row and the bond to the payer's deposit", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await openDispute(s, 0);
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, r.amount))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, s.arbiter.address, r.amount, 0n, true);
      expect(await s.router.balanceOf(r.user)).to.equal(before + r.amount + BOND);
      expect(await s.router.credits(s.openai)).to.equal(0n);
      expect((await s.router.disputeInfo(s.batch.batchId, 0)).status).to.equal(DisputeStatus.Resolved);
      await expectSolvent(s);
    });

    it("a partial refund pays the rest to the provider and returns the bond", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await openDispute(s, 0);
      const refund = r.amount / 4n;
      const before = await s.router.balanceOf(r.user);
      await s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, refund);
      expect(await s.router.balanceOf(r.user)).to.equal(before + refund + BOND);
      expect(await s.router.credits(s.openai)).to.equal(r.amount - refund);
      await expectSolvent(s);
    });

    it("a rejected dispute pays the row and the bond to the provider", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await openDispute(s, 0);
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, 0n))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, s.arbiter.address, 0n, r.amount, false);
      expect(await s.router.balanceOf(r.user)).to.equal(before);
      expect(await s.router.credits(s.openai)).to.equal(r.amount + BOND);
      await expectSolvent(s);
    });

    it("refuses a refund above the disputed amount, a second resolution, and unknown disputes", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await openDispute(s, 0);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, r.amount + 1n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMRefundTooLarge")
        .withArgs(r.amount + 1n, r.amount);
      await s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, 0n);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, 0n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeNotOpen")
        .withArgs(s.batch.batchId, 0n);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 1, 0n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMDisputeNotOpen",
      );
    });

    it("only the arbiter until its deadline, then governance until the second deadline", async function () {
      const s = await loadFixture(settledFixture);
      await openDispute(s, 0);
      const opened = (await s.router.disputeInfo(s.batch.batchId, 0)).openedAt;
      const arbiterDeadline = opened + (await s.router.arbiterTimeout());
      const governanceDeadline = arbiterDeadline + (await s.router.governanceTimeout());
      for (const signer of [s.stranger, s.relayer, s.pauser, s.payers[0]!]) {
        await expect(s.router.connect(signer).resolveDispute(s.batch.batchId, 0, 1n))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMNotResolver")
          .withArgs(signer.address, arbiterDeadline, governanceDeadline);
      }
      await time.increaseTo(arbiterDeadline);
      await expect(s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 0, 1n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      await expect(s.router.connect(s.admin).resolveDispute(s.batch.batchId, 0, 1n)).to.emit(s.router, "DisputeResolved");
    });

    it("refunds the payer by default when nobody resolved in time", async function () {
      const s = await loadFixture(settledFixture);
      const r = s.rows[0]!;
      await openDispute(s, 0);
      const opened = (await s.router.disputeInfo(s.batch.batchId, 0)).openedAt;
      const expiresAt = opened + (await s.router.arbiterTimeout()) + (await s.router.governanceTimeout());
      await expect(s.router.connect(s.stranger).refundExpiredDispute(s.batch.batchId, 0))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeNotExpired")
        .withArgs(s.batch.batchId, 0n, expiresAt);
      await time.increaseTo(expiresAt);
      await expect(s.router.connect(s.admin).resolveDispute(s.batch.batchId, 0, 0n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotResolver",
      );
      const before = await s.router.balanceOf(r.user);
      await expect(s.router.connect(s.stranger).refundExpiredDispute(s.batch.batchId, 0))
        .to.emit(s.router, "DisputeResolved")
        .withArgs(s.batch.batchId, 0n, s.stranger.address, r.amount, 0n, true);
      expect(await s.router.balanceOf(r.user)).to.equal(before + r.amount + BOND);
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
      await openDispute(s, 0);
      await openDispute(s, 2); // groq fully disputed
      await time.increaseTo(s.batch.releaseAt);
      await s.router.release(s.batch.batchId);
      expect(await s.router.credits(s.openai)).to.equal(s.rows[1]!.amount);
      expect(await s.router.credits(s.groq)).to.equal(0n);
      expect(await s.router.totalEscrow()).to.equal(s.rows[0]!.amount + s.rows[2]!.amount);
      await s.router.connect(s.arbiter).resolveDispute(s.batch.batchId, 2, 0n);
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

/** A batch whose row 1 was rejected. */
async function fixture2(): Promise<Settled> {
  const s = await deploySuite(ethers);
  const [a] = s.payers;
  const rows = [row(a!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE), { ...row(a!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE), amount: 0n }];
  const batch = await settle(s, rows);
  return { ...s, rows, batch };
}
