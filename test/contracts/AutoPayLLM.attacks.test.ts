/**
 * One attack per hole in the seed's contract (run against the seed's code, where it works, and against ours, where
 * it must not), then the attacks the issue lists against the rewrite itself.
 */
import { expect } from "chai";
import { network } from "hardhat";

import {
  AGPT,
  GPT4_PRICE,
  RejectReason,
  deploySuite,
  expectSolvent,
  priceCap,
  row,
  settle,
  type Suite,
} from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

async function fixture(): Promise<Suite & { seed: Awaited<ReturnType<typeof deploySeed>> }> {
  const s = await deploySuite(ethers);
  return { ...s, seed: await deploySeed(s) };
}

async function deploySeed(s: Suite) {
  const seed = await ethers.deployContract("SeedAutoPayLLM", [await s.token.getAddress()]);
  // a victim who trusts the seed router with an allowance, as the seed requires
  await s.token.connect(s.payers[0]!).approve(await seed.getAddress(), 1_000n * AGPT);
  return seed;
}

describe("AutoPayLLM: attacks", function () {
  describe("holes of the seed contract", function () {
    it("anyone charging anyone: the seed lets a stranger pull a victim's tokens; ours needs RELAYER_ROLE", async function () {
      const s = await loadFixture(fixture);
      const victim = s.payers[0]!;
      const before = await s.token.balanceOf(victim.address);
      await s.seed.connect(s.stranger).executeLLMCall(victim.address, "openai", 1_250_000n * 1000n);
      expect(await s.token.balanceOf(victim.address)).to.be.lessThan(before); // exploited

      const charge = row(victim.address, s.openai, s.gpt4, 1_000_000n, GPT4_PRICE);
      await expect(settle(s, [charge], { signer: s.stranger }))
        .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
        .withArgs(s.stranger.address, await s.router.RELAYER_ROLE());
      expect(await s.router.balanceOf(victim.address)).to.equal(1_000n * AGPT);
    });

    it("calls under 1,250 tokens billed zero: the seed charges nothing; ours charges every token, rounded up", async function () {
      const s = await loadFixture(fixture);
      const victim = s.payers[0]!;
      expect(await s.seed.executeLLMCall.staticCall(victim.address, "openai", 1249n)).to.equal(0n); // free call

      for (const tokens of [1n, 999n, 1249n]) {
        const cap = await s.router.maxCharge(s.gpt4, tokens);
        expect(cap).to.equal(priceCap(tokens, GPT4_PRICE));
        expect(cap).to.be.greaterThan(0n);
      }
      const result = await settle(s, [row(victim.address, s.openai, s.gpt4, 1249n, GPT4_PRICE)]);
      expect(result.escrowed).to.equal(priceCap(1249n, GPT4_PRICE));
      // and a zero-amount row for usage is refused, not settled as free
      const zero = await settle(s, [{ ...row(victim.address, s.openai, s.gpt4, 1249n, GPT4_PRICE), amount: 0n }]);
      expect([...zero.rejected]).to.deep.equal([[0, RejectReason.ZeroAmount]]);
    });

    it("withdrawCredits drained by anyone, repeatedly: the seed pays any caller again and again; ours pays the payee once", async function () {
      const s = await loadFixture(fixture);
      const victim = s.payers[0]!;
      await s.seed.executeLLMCall(victim.address, "openai", 1250n * 10n ** 18n); // credits 1e18 units to (victim, openai)
      const other = s.payers[1]!;
      await s.token.connect(other).approve(await s.seed.getAddress(), 10n ** 18n);
      await s.seed.executeLLMCall(other.address, "groq", 1250n * 10n ** 18n); // another payer's funds in the pot
      const id = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["address", "string"], [victim.address, "openai"]));
      const thief = s.stranger;
      const start = await s.token.balanceOf(thief.address);
      await s.seed.connect(thief).withdrawCredits(id);
      await s.seed.connect(thief).withdrawCredits(id);
      expect(await s.token.balanceOf(thief.address)).to.equal(start + 2n * 10n ** 18n); // paid twice, to a stranger

      await settle(s, [row(victim.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE)]);
      await time.increase(3600);
      await s.router.release(ethers.toBeHex(await lastBatchId(s), 32));
      await expect(s.router.connect(thief).withdrawCredits(s.openai)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNotPayee",
      );
      await s.router.connect(s.payees[0]!).withdrawCredits(s.openai);
      await expect(s.router.connect(s.payees[0]!).withdrawCredits(s.openai)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMNothingToWithdraw",
      );
      await expectSolvent(s);
    });

    it("unchecked transferFrom result: the seed credits a charge that never arrived; ours rejects the row", async function () {
      const s = await loadFixture(fixture);
      const token = await ethers.deployContract("MockFalseReturnToken");
      const seed = await ethers.deployContract("SeedAutoPayLLM", [await token.getAddress()]);
      const victim = s.payers[0]!;
      await token.setFailing(true);
      await seed.executeLLMCall(victim.address, "openai", 1250n * 100n);
      const id = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["address", "string"], [victim.address, "openai"]));
      expect(await seed.apiCredits(id)).to.equal(100n); // credited...
      expect(await token.balanceOf(await seed.getAddress())).to.equal(0n); // ...with nothing behind it

      const router = await ethers.deployContract("AutoPayLLM", [await token.getAddress(), s.admin.address]);
      await router.grantRole(await router.RELAYER_ROLE(), s.relayer.address);
      await router.registerProvider("openai", s.payees[0]!.address);
      await router.setModelPrice("gpt-4-turbo", GPT4_PRICE);
      await token.mint(victim.address, 1_000n * AGPT);
      await token.connect(victim).approve(await router.getAddress(), 1_000n * AGPT);
      const batchId = ethers.id("false-token");
      await expect(
        router.connect(s.relayer).settleBatch(batchId, [row(victim.address, 1, 1, 10_000n, GPT4_PRICE)], ethers.id("r"), "cid"),
      )
        .to.emit(router, "RowRejected")
        .withArgs(batchId, 0n, victim.address, RejectReason.InsufficientFunds);
      expect(await router.totalEscrow()).to.equal(0n);
    });
  });

  describe("against the rewrite", function () {
    it("a malicious token cannot re-enter: deposit, withdraw and withdrawCredits are guarded", async function () {
      const [admin, relayer, , , , payee, payer] = await ethers.getSigners();
      const evil = await ethers.deployContract("MockReentrantToken");
      const router = await ethers.deployContract("AutoPayLLM", [await evil.getAddress(), admin!.address]);
      const routerAddress = await router.getAddress();
      await router.grantRole(await router.RELAYER_ROLE(), relayer!.address);
      await router.registerProvider("openai", payee!.address);
      await router.setModelPrice("gpt-4-turbo", GPT4_PRICE);
      await evil.mint(payer!.address, 1_000n * AGPT);
      await evil.connect(payer!).approve(routerAddress, 1_000n * AGPT);

      // during deposit's transferFrom, try to withdraw
      await evil.arm(routerAddress, router.interface.encodeFunctionData("withdraw", [1n]));
      await router.connect(payer!).deposit(100n * AGPT);
      expect(await evil.attackSucceeded()).to.equal(false);
      expect(await evil.lastRevert()).to.equal(router.interface.getError("ReentrancyGuardReentrantCall")!.selector);

      // during withdraw's transfer, try to withdraw again
      await evil.arm(routerAddress, router.interface.encodeFunctionData("withdraw", [1n]));
      await router.connect(payer!).withdraw(10n * AGPT);
      expect(await evil.attackSucceeded()).to.equal(false);
      expect(await router.balanceOf(payer!.address)).to.equal(90n * AGPT);

      // during settlement's allowance pull, try to release or settle again
      const batchId = ethers.id("evil");
      await evil.arm(routerAddress, router.interface.encodeFunctionData("release", [batchId]));
      await router.connect(payer!).setAutoRefill(90n * AGPT, 1n * AGPT);
      await router.connect(relayer!).settleBatch(batchId, [row(payer!.address, 1, 1, 10_000n, GPT4_PRICE)], ethers.id("r"), "cid");
      expect(await evil.attackSucceeded()).to.equal(false);

      // during withdrawCredits' transfer, try to withdraw credits again
      await time.increase(3600);
      await router.release(batchId);
      await evil.arm(routerAddress, router.interface.encodeFunctionData("withdrawCredits", [1]));
      await router.connect(payee!).withdrawCredits(1);
      expect(await evil.attackSucceeded()).to.equal(false);
      expect(await evil.balanceOf(routerAddress)).to.equal(await router.totalLiabilities());
    });

    it("a relayer cannot move funds: it can only settle within every cap", async function () {
      const s = await loadFixture(fixture);
      await settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE)]);
      const relayer = s.router.connect(s.relayer);
      await expect(relayer.withdraw(1n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInsufficientDeposit")
        .withArgs(s.relayer.address, 0n, 1n);
      await expect(relayer.withdrawCredits(s.openai)).to.be.revertedWithCustomError(s.router, "AutoPayLLMNotPayee");
      await expect(relayer.sweep(await s.token.getAddress(), s.relayer.address)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      await expect(relayer.registerProvider("mine", s.relayer.address)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      await expect(relayer.setProviderPayee(s.openai, s.relayer.address)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      await expect(relayer.resolveDispute(ethers.ZeroHash, 0)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMDisputeNotOpen",
      );
      // charging itself as a payer gives it nothing: funds only flow to registered payees
      expect(await s.token.balanceOf(s.relayer.address)).to.equal(0n);
      await expectSolvent(s);
    });

    it("a relayer cannot charge over the price cap, the daily cap, the model budget or the allowance", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      await s.router.connect(payer).setDailyCap(20n * AGPT);
      await s.router.setModelBudget("gpt-4-turbo", 30n * AGPT);
      await s.token.connect(payer).approve(s.routerAddress, 0n);
      const base = row(payer.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE); // 12 AGPT
      const result = await settle(s, [
        { ...base, amount: base.amount + 1n }, // over price cap
        base, // 12: ok
        base, // 24 > 20: over the payer's daily cap
        { ...base, user: s.payers[1]!.address }, // 12 (model total 24): ok
        { ...base, user: s.payers[2]!.address }, // model total 36 > 30: over the model budget
        { ...row(s.stranger.address, s.openai, s.gpt4, 1_000n, GPT4_PRICE) }, // no deposit, no allowance
      ]);
      expect([...result.rejected]).to.deep.equal([
        [0, RejectReason.OverPriceCap],
        [2, RejectReason.OverDailyCap],
        [4, RejectReason.OverModelBudget],
        [5, RejectReason.InsufficientFunds],
      ]);
      expect(result.escrowed).to.equal(2n * base.amount);
      await expectSolvent(s);
    });
  });
});

async function lastBatchId(s: Suite): Promise<bigint> {
  const events = await s.router.queryFilter(s.router.filters.BatchSettled());
  return BigInt(events.at(-1)!.args.batchId);
}
