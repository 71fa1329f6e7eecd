import { expect } from "chai";
import { network } from "hardhat";
import { Signature } from "ethers";

import type { Charge } from "../../relayer/batcher/rows-tree.js";
import { AGPT, GPT4_PRICE, RejectReason, deploySuite, expectSolvent, row, settle, type Suite } from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture } = networkHelpers;

async function fixture(): Promise<Suite> {
  return deploySuite(ethers);
}

/** A router on another payment token, with one provider and one priced model, no deposits yet. */
async function routerOn(tokenAddress: string) {
  const [admin, relayer, , , , payee] = await ethers.getSigners();
  const router = await ethers.deployContract("AutoPayLLM", [tokenAddress, admin!.address]);
  await router.grantRole(await router.RELAYER_ROLE(), relayer!.address);
  await router.registerProvider("openai", payee!.address);
  await router.setModelPrice("gpt-4-turbo", 10n ** 6n); // 1 unit of a 6-decimals token per 1k tokens
  return { router, relayer: relayer!, payee: payee! };
}

describe("AutoPayLLM: funds", function () {
  describe("deposit", function () {
    it("adds to the caller's deposit and the totals", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.token.connect(payer).approve(s.routerAddress, 5n * AGPT);
      await expect(s.router.connect(payer).deposit(5n * AGPT))
        .to.emit(s.router, "Deposited")
        .withArgs(payer.address, payer.address, 5n * AGPT);
      expect(await s.router.balanceOf(payer.address)).to.equal(1_005n * AGPT);
      await expectSolvent(s);
    });

    it("refuses zero, and an amount beyond the allowance", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await expect(s.router.connect(payer).deposit(0n)).to.be.revertedWithCustomError(s.router, "AutoPayLLMZeroAmount");
      await expect(s.router.connect(s.stranger).deposit(1n)).to.be.revertedWithCustomError(
        s.router,
        "SafeERC20FailedOperation",
      );
    });

    it("depositFor credits another payer, paid by the caller", async function () {
      const s = await loadFixture(fixture);
      const treasury = s.admin;
      const payer = s.stranger;
      await s.token.connect(treasury).approve(s.routerAddress, 7n * AGPT);
      await expect(s.router.connect(treasury).depositFor(payer.address, 7n * AGPT))
        .to.emit(s.router, "Deposited")
        .withArgs(payer.address, treasury.address, 7n * AGPT);
      expect(await s.router.balanceOf(payer.address)).to.equal(7n * AGPT);
      expect(await s.router.balanceOf(treasury.address)).to.equal(0n);
      await expect(s.router.depositFor(ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMZeroAddress",
      );
    });

    describe("depositWithPermit", function () {
      async function permit(s: Suite, owner: (typeof s.payers)[number], value: bigint, deadline: bigint) {
        const domain = {
          name: "AgentGPT",
          version: "1",
          chainId: (await ethers.provider.getNetwork()).chainId,
          verifyingContract: await s.token.getAddress(),
        };
        const types = {
          Permit: [
            { name: "owner", type: "address" },
            { name: "spender", type: "address" },
            { name: "value", type: "uint256" },
            { name: "nonce", type: "uint256" },
            { name: "deadline", type: "uint256" },
          ],
        };
        const message = { owner: owner.address, spender: s.routerAddress, value, nonce: await s.token.nonces(owner.address), deadline };
        return Signature.from(await owner.signTypedData(domain, types, message));
      }

      it("funds the router in one transaction, without a prior approve", async function () {
        const s = await loadFixture(fixture);
        const payer = s.payers[0]!;
        await s.token.connect(payer).approve(s.routerAddress, 0n);
        const sig = await permit(s, payer, 3n * AGPT, ethers.MaxUint256);
        await expect(s.router.connect(payer).depositWithPermit(3n * AGPT, ethers.MaxUint256, sig.v, sig.r, sig.s))
          .to.emit(s.router, "Deposited")
          .withArgs(payer.address, payer.address, 3n * AGPT);
        expect(await s.router.balanceOf(payer.address)).to.equal(1_003n * AGPT);
      });

      it("still deposits when a front-runner already submitted the permit", async function () {
        const s = await loadFixture(fixture);
        const payer = s.payers[0]!;
        await s.token.connect(payer).approve(s.routerAddress, 0n);
        const sig = await permit(s, payer, 3n * AGPT, ethers.MaxUint256);
        await s.token.connect(s.stranger).permit(payer.address, s.routerAddress, 3n * AGPT, ethers.MaxUint256, sig.v, sig.r, sig.s);
        await s.router.connect(payer).depositWithPermit(3n * AGPT, ethers.MaxUint256, sig.v, sig.r, sig.s);
        expect(await s.router.balanceOf(payer.address)).to.equal(1_003n * AGPT);
      });

      it("fails with neither a valid permit nor an allowance", async function () {
        const s = await loadFixture(fixture);
        const payer = s.payers[0]!;
        await s.token.connect(payer).approve(s.routerAddress, 0n);
        const sig = await permit(s, payer, 3n * AGPT, 1n); // expired
        await expect(
          s.router.connect(payer).depositWithPermit(3n * AGPT, 1n, sig.v, sig.r, sig.s),
        ).to.be.revertedWithCustomError(s.router, "SafeERC20FailedOperation");
      });
    });
  });

  describe("withdraw", function () {
    it("returns un-escrowed deposit to its owner, also while paused", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      const r = row(payer.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE);
      await settle(s, [r]);
      await s.router.connect(s.pauser).pause();
      const wallet = await s.token.balanceOf(payer.address);
      const available = 1_000n * AGPT - r.amount;
      await expect(s.router.connect(payer).withdraw(available + 1n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInsufficientDeposit")
        .withArgs(payer.address, available, available + 1n);
      await expect(s.router.connect(payer).withdraw(available))
        .to.emit(s.router, "Withdrawn")
        .withArgs(payer.address, available);
      expect(await s.token.balanceOf(payer.address)).to.equal(wallet + available);
      expect(await s.router.balanceOf(payer.address)).to.equal(0n);
      expect(await s.router.totalEscrow()).to.equal(r.amount); // the escrowed charge stays
      await expectSolvent(s);
      await expect(s.router.connect(payer).withdraw(0n)).to.be.revertedWithCustomError(s.router, "AutoPayLLMZeroAmount");
    });
  });

  describe("payer settings", function () {
    it("setDailyCap refuses values above 128 bits", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.connect(s.payers[0]!).setDailyCap(2n ** 128n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMValueTooLarge")
        .withArgs(2n ** 128n, 2n ** 128n - 1n);
    });

    it("setAutoRefill stores the threshold and amount", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await expect(s.router.connect(payer).setAutoRefill(50n * AGPT, 200n * AGPT))
        .to.emit(s.router, "AutoRefillSet")
        .withArgs(payer.address, 50n * AGPT, 200n * AGPT);
      const account = await s.router.accountOf(payer.address);
      expect(account.refillThreshold).to.equal(50n * AGPT);
      expect(account.refillAmount).to.equal(200n * AGPT);
    });
  });

  describe("auto-refill from the allowance", function () {
    it("pulls the refill amount when a charge would leave the deposit below the threshold", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.router.connect(payer).withdraw(1_000n * AGPT - 51n * AGPT); // deposit 51 AGPT
      await s.router.connect(payer).setAutoRefill(50n * AGPT, 200n * AGPT);
      await s.token.connect(payer).approve(s.routerAddress, 1_000n * AGPT);
      const r = row(payer.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE); // 1.2 AGPT: 51 - 1.2 < 50
      const result = await settle(s, [r]);
      expect(result.rejected.size).to.equal(0);
      const refill = result.receipt.logs
        .map((log) => s.router.interface.parseLog(log))
        .find((e) => e?.name === "AutoRefilled");
      expect(refill?.args.user).to.equal(payer.address);
      expect(refill?.args.received).to.equal(200n * AGPT);
      expect(await s.router.balanceOf(payer.address)).to.equal(51n * AGPT + 200n * AGPT - r.amount);
      await expectSolvent(s);
    });

    it("pulls a shortfall when the deposit is short, once for the payer's run of rows", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.router.connect(payer).withdraw(1_000n * AGPT); // deposit 0
      await s.token.connect(payer).approve(s.routerAddress, 1_000n * AGPT);
      const rows: Charge[] = [1n, 2n, 3n].map((k) => row(payer.address, s.openai, s.gpt4, k * 1000n, GPT4_PRICE));
      const need = rows.reduce((sum, r) => sum + r.amount, 0n);
      const wallet = await s.token.balanceOf(payer.address);
      const result = await settle(s, rows);
      expect(result.rejected.size).to.equal(0);
      const refills = result.receipt.logs.filter((log) => s.router.interface.parseLog(log)?.name === "AutoRefilled");
      expect(refills.length).to.equal(1);
      expect(await s.token.balanceOf(payer.address)).to.equal(wallet - need);
      expect(await s.router.balanceOf(payer.address)).to.equal(0n);
      await expectSolvent(s);
    });

    it("never pulls beyond the allowance, and rejects what it cannot cover", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.router.connect(payer).withdraw(1_000n * AGPT);
      const r = row(payer.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE); // 1.2 AGPT
      await s.token.connect(payer).approve(s.routerAddress, r.amount + r.amount / 2n); // enough for one row and a half
      const wallet = await s.token.balanceOf(payer.address);
      const result = await settle(s, [r, r]);
      expect([...result.rejected]).to.deep.equal([[1, RejectReason.InsufficientFunds]]);
      expect(await s.token.allowance(payer.address, s.routerAddress)).to.equal(0n);
      expect(await s.token.balanceOf(payer.address)).to.equal(wallet - r.amount - r.amount / 2n);
      // what was pulled but not charged stays the payer's, withdrawable
      expect(await s.router.balanceOf(payer.address)).to.equal(r.amount / 2n);
      await expectSolvent(s);
    });

    it("never pulls beyond the wallet balance", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.router.connect(payer).withdraw(1_000n * AGPT);
      const r = row(payer.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE);
      const wallet = await s.token.balanceOf(payer.address);
      await s.token.connect(payer).transfer(s.admin.address, wallet - r.amount); // keep exactly one row's worth
      await s.token.connect(payer).approve(s.routerAddress, ethers.MaxUint256);
      const result = await settle(s, [r, r]);
      expect([...result.rejected]).to.deep.equal([[1, RejectReason.InsufficientFunds]]);
      expect(await s.token.balanceOf(payer.address)).to.equal(0n);
      await expectSolvent(s);
    });
  });

  describe("payment tokens", function () {
    it("works with a USDT-style token that returns no bool", async function () {
      const token = await ethers.deployContract("MockNoReturnToken");
      const { router, relayer, payee } = await routerOn(await token.getAddress());
      const [, , , , , , payer] = await ethers.getSigners();
      await token.mint(payer!.address, 1_000_000n);
      await token.connect(payer!).approve(await router.getAddress(), 1_000_000n);
      await router.connect(payer!).deposit(100_000n);
      const r = { user: payer!.address, provider: 1, model: 1, tokens: 5_000n, amount: 5n };
      // second row needs a pull beyond the deposit
      const big = { ...r, tokens: 200_000_000n, amount: 200_000n };
      await router.connect(relayer).settleBatch(ethers.id("usdt"), [r, big], ethers.id("receipts"), "cid");
      expect(await router.balanceOf(payer!.address)).to.equal(0n);
      expect(await router.totalEscrow()).to.equal(200_005n);
      await networkHelpers.time.increase(3600);
      await router.release(ethers.id("usdt"));
      await router.connect(payee).withdrawCredits(1);
      expect(await token.balanceOf(payee.address)).to.equal(200_005n);
      expect(await token.balanceOf(await router.getAddress())).to.equal(await router.totalLiabilities());
    });

    it("accounts a fee-on-transfer token by what actually arrives", async function () {
      const token = await ethers.deployContract("MockFeeOnTransferToken", [100n]); // 1% fee
      const { router, relayer } = await routerOn(await token.getAddress());
      const [, , , , , , payer] = await ethers.getSigners();
      await token.mint(payer!.address, 10n ** 9n);
      await token.connect(payer!).approve(await router.getAddress(), 10n ** 9n);
      await expect(router.connect(payer!).deposit(1_000_000n))
        .to.emit(router, "Deposited")
        .withArgs(payer!.address, payer!.address, 990_000n);
      expect(await router.balanceOf(payer!.address)).to.equal(990_000n);
      // a pull: 2,000,000 needed, 1,010,000 short; the refill credits what arrives after the fee
      const r = { user: payer!.address, provider: 1, model: 1, tokens: 2_000_000_000n, amount: 2_000_000n };
      await router.connect(relayer).settleBatch(ethers.id("fee"), [r], ethers.id("receipts"), "cid");
      const routerAddress = await router.getAddress();
      expect(await token.balanceOf(routerAddress)).to.equal(await router.totalLiabilities());
      expect(await router.totalEscrow() + (await router.balanceOf(payer!.address))).to.equal(
        await token.balanceOf(routerAddress),
      );
    });

    it("refuses a deposit of which nothing arrives, and a deposit beyond 128 bits", async function () {
      const burner = await ethers.deployContract("MockFeeOnTransferToken", [10_000n]); // 100% fee
      const { router } = await routerOn(await burner.getAddress());
      const [, , , , , , payer] = await ethers.getSigners();
      await burner.mint(payer!.address, 1_000n);
      await burner.connect(payer!).approve(await router.getAddress(), 1_000n);
      await expect(router.connect(payer!).deposit(1_000n))
        .to.be.revertedWithCustomError(router, "AutoPayLLMTokenTransferShort")
        .withArgs(1_000n, 0n);

      const big = await ethers.deployContract("MockERC20", ["Big", "BIG", 18]);
      const onBig = await routerOn(await big.getAddress());
      await big.mint(payer!.address, 2n ** 129n);
      await big.connect(payer!).approve(await onBig.router.getAddress(), 2n ** 129n);
      await onBig.router.connect(payer!).deposit(2n ** 128n - 1n);
      await expect(onBig.router.connect(payer!).deposit(1n))
        .to.be.revertedWithCustomError(onBig.router, "AutoPayLLMDepositTooLarge")
        .withArgs(payer!.address, 2n ** 128n);
    });

    it("refuses a dispute bond that arrives short (fee-on-transfer)", async function () {
      const fee = await ethers.deployContract("MockFeeOnTransferToken", [100n]);
      const { router, relayer } = await routerOn(await fee.getAddress());
      const [, , , , , , payer] = await ethers.getSigners();
      await fee.mint(payer!.address, 10n ** 12n);
      await fee.connect(payer!).approve(await router.getAddress(), 10n ** 12n);
      await router.connect(payer!).deposit(10n ** 9n);
      const r = { user: payer!.address, provider: 1, model: 1, tokens: 1_000_000n, amount: 1_000n };
      const batchId = ethers.id("fee-bond");
      await router.connect(relayer).settleBatch(batchId, [r], ethers.id("receipts"), "cid");
      await router.connect(payer!).withdraw(await router.balanceOf(payer!.address));
      await router.setDisputeBond(10_000n);
      const { buildRowsTree } = await import("../../relayer/batcher/rows-tree.js");
      const refs = [{ batchId, index: 0, charge: r, proof: buildRowsTree([r]).proof(0) }];
      await expect(router.connect(payer!).dispute(refs))
        .to.be.revertedWithCustomError(router, "AutoPayLLMTokenTransferShort")
        .withArgs(10_000n, 9_900n);
      // with no bond configured, a dispute needs no funds at all
      await router.setDisputeBond(0n);
      await expect(router.connect(payer!).dispute(refs)).to.emit(router, "DisputeOpened");
    });

    it("treats a token that returns false as a failed transfer, never as paid", async function () {
      const token = await ethers.deployContract("MockFalseReturnToken");
      const { router, relayer } = await routerOn(await token.getAddress());
      const [, , , , , , payer] = await ethers.getSigners();
      await token.mint(payer!.address, 10n ** 9n);
      await token.connect(payer!).approve(await router.getAddress(), 10n ** 9n);
      await token.setFailing(true);
      await expect(router.connect(payer!).deposit(1_000n)).to.be.revertedWithCustomError(router, "SafeERC20FailedOperation");
      const r = { user: payer!.address, provider: 1, model: 1, tokens: 1_000_000n, amount: 1_000n };
      await expect(router.connect(relayer).settleBatch(ethers.id("false"), [r], ethers.id("receipts"), "cid"))
        .to.emit(router, "RowRejected")
        .withArgs(ethers.id("false"), 0n, payer!.address, RejectReason.InsufficientFunds);
      expect(await router.totalEscrow()).to.equal(0n);
      expect(await token.balanceOf(await router.getAddress())).to.equal(0n);
    });
  });
});
