import { expect } from "chai";
import { network } from "hardhat";

import { AGPT, GPT4_PRICE, deploySuite, expectSolvent, row, settle, type Suite } from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture } = networkHelpers;

async function fixture(): Promise<Suite> {
  return deploySuite(ethers);
}

describe("AutoPayLLM: governance powers", function () {
  it("refuses a zero token or admin at construction", async function () {
    const [admin] = await ethers.getSigners();
    const factory = await ethers.getContractFactory("AutoPayLLM");
    await expect(factory.deploy(ethers.ZeroAddress, admin!.address)).to.be.revertedWithCustomError(
      factory,
      "AutoPayLLMZeroAddress",
    );
    await expect(factory.deploy(admin!.address, ethers.ZeroAddress)).to.be.revertedWithCustomError(
      factory,
      "AutoPayLLMZeroAddress",
    );
  });

  it("every governance function is DEFAULT_ADMIN_ROLE only", async function () {
    const s = await loadFixture(fixture);
    const adminRole = await s.router.DEFAULT_ADMIN_ROLE();
    for (const signer of [s.stranger, s.relayer, s.arbiter, s.pauser, s.payers[0]!]) {
      const router = s.router.connect(signer);
      const calls = [
        router.registerProvider("x", signer.address),
        router.setProviderPayee(1, signer.address),
        router.setModelBudget("gpt-4-turbo", 1n),
        router.setModelPrice("gpt-4-turbo", 1n),
        router.setDisputeWindow(7200),
        router.setDisputeBond(1n),
        router.setDisputeBondBps(1),
        router.setDisputeTimeouts(3600, 3600),
        router.sweep(await s.token.getAddress(), signer.address),
        router.grantRole(await s.router.RELAYER_ROLE(), signer.address),
      ];
      for (const call of calls) {
        await expect(call)
          .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
          .withArgs(signer.address, adminRole);
      }
    }
  });

  describe("providers", function () {
    it("registers providers with sequential ids and unique names", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.registerProvider("anthropic", s.stranger.address))
        .to.emit(s.router, "ProviderRegistered")
        .withArgs(3n, "anthropic", s.stranger.address);
      expect(await s.router.providerId("anthropic")).to.equal(3n);
      expect(await s.router.providerId("nobody")).to.equal(0n);
      expect(await s.router.providerCount()).to.equal(3n);
      const [name, payee] = await s.router.providerInfo(3);
      expect([name, payee]).to.deep.equal(["anthropic", s.stranger.address]);
      await expect(s.router.registerProvider("anthropic", s.stranger.address))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMProviderExists")
        .withArgs("anthropic", 3n);
      await expect(s.router.registerProvider("", s.stranger.address)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidName",
      );
      await expect(s.router.registerProvider("x".repeat(65), s.stranger.address)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidName",
      );
      await expect(s.router.registerProvider("y", ethers.ZeroAddress)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMZeroAddress",
      );
    });

    it("changes payees only of known providers, never to zero", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.setProviderPayee(0, s.stranger.address))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownProvider")
        .withArgs(0n);
      await expect(s.router.setProviderPayee(3, s.stranger.address))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownProvider")
        .withArgs(3n);
      await expect(s.router.setProviderPayee(1, ethers.ZeroAddress)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMZeroAddress",
      );
    });
  });

  describe("models", function () {
    it("setModelBudget and setModelPrice register new models and emit their values", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.setModelBudget("claude-3", 500n * AGPT))
        .to.emit(s.router, "ModelRegistered")
        .withArgs(3n, "claude-3")
        .and.to.emit(s.router, "ModelBudgetSet")
        .withArgs(3n, "claude-3", 500n * AGPT);
      await expect(s.router.setModelPrice("claude-3", 9n * 10n ** 16n))
        .to.emit(s.router, "ModelPriceSet")
        .withArgs(3n, "claude-3", 9n * 10n ** 16n)
        .and.not.to.emit(s.router, "ModelRegistered");
      expect(await s.router.modelId("claude-3")).to.equal(3n);
      expect(await s.router.modelCount()).to.equal(3n);
      const info = await s.router.modelInfo(3);
      expect([info.name, info.maxPricePer1kTokens, info.dailyLimit]).to.deep.equal(["claude-3", 9n * 10n ** 16n, 500n * AGPT]);
    });

    it("refuses values above 128 bits and invalid names", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.setModelBudget("m", 2n ** 128n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMValueTooLarge")
        .withArgs(2n ** 128n, 2n ** 128n - 1n);
      await expect(s.router.setModelPrice("m", 2n ** 128n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMValueTooLarge",
      );
      await expect(s.router.setModelPrice("", 1n)).to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidName");
    });
  });

  describe("dispute parameters", function () {
    it("setDisputeWindow applies to batches settled afterwards only, within bounds", async function () {
      const s = await loadFixture(fixture);
      const before = await settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 10n, GPT4_PRICE)]);
      await expect(s.router.setDisputeWindow(7200)).to.emit(s.router, "DisputeWindowSet").withArgs(7200n);
      const after = await settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 10n, GPT4_PRICE)]);
      const a = await s.router.batchInfo(before.batchId);
      const b = await s.router.batchInfo(after.batchId);
      expect(a.releaseAt - a.settledAt).to.equal(3600n);
      expect(b.releaseAt - b.settledAt).to.equal(7200n);
      await expect(s.router.setDisputeWindow(59))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMDisputeWindowOutOfRange")
        .withArgs(59n, 60n, 30n * 86400n);
      await expect(s.router.setDisputeWindow(30 * 86400 + 1)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMDisputeWindowOutOfRange",
      );
    });

    it("setDisputeBond, setDisputeBondBps and setDisputeTimeouts check their bounds", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.setDisputeBond(2n * AGPT)).to.emit(s.router, "DisputeBondSet").withArgs(2n * AGPT, 0n);
      await expect(s.router.setDisputeBond(2n ** 127n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMValueTooLarge",
      );
      await expect(s.router.setDisputeBondBps(250)).to.emit(s.router, "DisputeBondSet").withArgs(2n * AGPT, 250n);
      await expect(s.router.setDisputeBondBps(5001))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBondBpsTooLarge")
        .withArgs(5001n, 5000n);
      await expect(s.router.setDisputeTimeouts(7200, 86400))
        .to.emit(s.router, "DisputeTimeoutsSet")
        .withArgs(7200n, 86400n);
      expect(await s.router.arbiterTimeout()).to.equal(7200n);
      await expect(s.router.setDisputeTimeouts(3599, 86400))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMTimeoutOutOfRange")
        .withArgs(3599n, 3600n, 90n * 86400n);
      await expect(s.router.setDisputeTimeouts(3600, 91 * 86400)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMTimeoutOutOfRange",
      );
    });
  });

  describe("pause", function () {
    it("only the pauser pauses and unpauses", async function () {
      const s = await loadFixture(fixture);
      const role = await s.router.PAUSER_ROLE();
      for (const signer of [s.stranger, s.admin, s.relayer]) {
        await expect(s.router.connect(signer).pause())
          .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
          .withArgs(signer.address, role);
      }
      await s.router.connect(s.pauser).pause();
      expect(await s.router.paused()).to.equal(true);
      await expect(s.router.connect(s.stranger).unpause()).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      await s.router.connect(s.pauser).unpause();
      expect(await s.router.paused()).to.equal(false);
    });
  });

  describe("sweep", function () {
    it("recovers only the payment token's surplus over every liability", async function () {
      const s = await loadFixture(fixture);
      await settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE)]);
      await expect(s.router.sweep(await s.token.getAddress(), s.admin.address))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMNoSurplus")
        .withArgs(await s.token.getAddress());
      await s.token.transfer(s.routerAddress, 3n * AGPT); // sent outside deposit()
      await expect(s.router.sweep(await s.token.getAddress(), s.stranger.address))
        .to.emit(s.router, "Swept")
        .withArgs(await s.token.getAddress(), s.stranger.address, 3n * AGPT);
      await expectSolvent(s);
      await expect(s.router.sweep(await s.token.getAddress(), ethers.ZeroAddress)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMZeroAddress",
      );
    });

    it("recovers other tokens in full", async function () {
      const s = await loadFixture(fixture);
      const other = await ethers.deployContract("MockERC20", ["Other", "OTH", 18]);
      await other.mint(s.routerAddress, 42n);
      await s.router.sweep(await other.getAddress(), s.stranger.address);
      expect(await other.balanceOf(s.stranger.address)).to.equal(42n);
    });
  });
});
