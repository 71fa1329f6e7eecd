import { expect } from "chai";
import { network } from "hardhat";

import { deployOracleSuite, DON_ID, HEARTBEAT, PRICE, SUBSCRIPTION_ID, type OracleSuite } from "../helpers/oracle.js";
import { AGPT } from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const USD = 10n ** 18n;
const MIN_PRICE = 1_000_000n; // 0.01 USD
const MAX_PRICE = 1_000_000_000_000n; // 10,000 USD

async function oracleFixture(): Promise<OracleSuite> {
  return deployOracleSuite(ethers, "http://127.0.0.1:1");
}

/** A feed with a sequencer-uptime feed set on the router: up since an hour before now, grace 30 minutes. */
async function sequencerFixture() {
  const s = await deployOracleSuite(ethers, "http://127.0.0.1:1");
  const now = BigInt(await time.latest());
  const sequencer = await ethers.deployContract("ChainlinkMockV3Aggregator", [0, 0]);
  await sequencer.updateRoundData(1, 0, now - 3600n, now - 3600n);
  await s.router.setSequencerUptimeFeed(await sequencer.getAddress(), 1800);
  await s.priceFeed.updateAnswer(PRICE);
  return { ...s, sequencer };
}

describe("UsageOracle: USD price feed", function () {
  describe("constructor", function () {
    it("refuses zero addresses and tokens of more than 18 decimals", async function () {
      const s = await loadFixture(oracleFixture);
      const fr = await s.functionsRouter.getAddress();
      const Oracle = await ethers.getContractFactory("UsageOracle");
      for (const args of [
        [ethers.ZeroAddress, fr, s.admin.address],
        [s.routerAddress, ethers.ZeroAddress, s.admin.address],
        [s.routerAddress, fr, ethers.ZeroAddress],
      ] as const) {
        await expect(Oracle.deploy(...args)).to.be.revertedWithCustomError(Oracle, "UsageOracleZeroAddress");
      }
      const token19 = await ethers.deployContract("MockERC20", ["Nineteen", "N19", 19]);
      const router19 = await ethers.deployContract("AutoPayLLM", [await token19.getAddress(), s.admin.address]);
      await expect(Oracle.deploy(await router19.getAddress(), fr, s.admin.address))
        .to.be.revertedWithCustomError(Oracle, "UsageOracleUnsupportedDecimals")
        .withArgs(19, 18);
      expect(await s.oracle.tokenDecimals()).to.equal(18n);
      expect(await s.oracle.hasRole(await s.oracle.DEFAULT_ADMIN_ROLE(), s.admin.address)).to.equal(true);
    });
  });

  describe("latestPrice, usdToTokens, tokensToUsd", function () {
    it("scales an 8-decimal USD feed to the 18-decimal token exactly", async function () {
      const s = await loadFixture(oracleFixture);
      const [price, decimals] = await s.oracle.latestPrice();
      expect(price).to.equal(PRICE);
      expect(decimals).to.equal(8n);
      // 2.5 USD per AGPT: 1 USD = 0.4 AGPT exactly, and back
      expect(await s.oracle.usdToTokens(USD)).to.equal((4n * AGPT) / 10n);
      expect(await s.oracle.tokensToUsd((4n * AGPT) / 10n)).to.equal(USD);
      expect(await s.oracle.tokensToUsd(AGPT)).to.equal((25n * USD) / 10n);
      expect(await s.oracle.usdToTokens(123_456_789n * USD)).to.equal((123_456_789n * 4n * AGPT) / 10n);
      expect(await s.oracle.usdToTokens(0n)).to.equal(0n);
    });

    it("rounds token amounts up (no priced call is free) and USD values down", async function () {
      const s = await loadFixture(oracleFixture);
      await s.priceFeed.updateAnswer(300_000_000n); // 3 USD
      expect(await s.oracle.usdToTokens(1n)).to.equal(1n); // 1e-18 USD = 0.33 units: rounds up to 1
      expect(await s.oracle.usdToTokens(USD)).to.equal((AGPT + 2n) / 3n);
      expect(await s.oracle.tokensToUsd(1n)).to.equal(3n);
      expect(await s.oracle.tokensToUsd((AGPT + 2n) / 3n)).to.equal(USD + 2n);
    });

    it("scales feeds of other decimals exactly (18 and 0)", async function () {
      const s = await loadFixture(oracleFixture);
      const feed18 = await ethers.deployContract("ChainlinkMockV3Aggregator", [18, USD / 2n]); // 0.5 USD
      await s.oracle.setPriceFeed(await feed18.getAddress(), HEARTBEAT, 1n, 10n ** 30n);
      expect(await s.oracle.usdToTokens(USD)).to.equal(2n * AGPT);
      const feed0 = await ethers.deployContract("ChainlinkMockV3Aggregator", [0, 4n]); // 4 USD
      await s.oracle.setPriceFeed(await feed0.getAddress(), HEARTBEAT, 1n, 100n);
      expect(await s.oracle.usdToTokens(USD)).to.equal(AGPT / 4n);
    });

    it("refuses a stale price: older than the heartbeat, or from the future", async function () {
      const s = await loadFixture(oracleFixture);
      const updatedAt = (await s.priceFeed.latestRoundData())[3];
      await time.increaseTo(updatedAt + BigInt(HEARTBEAT));
      await s.oracle.latestPrice(); // exactly one heartbeat old: still fresh
      await time.increaseTo(updatedAt + BigInt(HEARTBEAT) + 1n);
      await expect(s.oracle.latestPrice())
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleStalePrice")
        .withArgs(updatedAt, HEARTBEAT, updatedAt + BigInt(HEARTBEAT) + 1n);
      await expect(s.oracle.usdToTokens(USD)).to.be.revertedWithCustomError(s.oracle, "UsageOracleStalePrice");
      await expect(s.oracle.tokensToUsd(AGPT)).to.be.revertedWithCustomError(s.oracle, "UsageOracleStalePrice");
      const now = BigInt(await time.latest());
      await s.priceFeed.updateRoundData(9, PRICE, now + 1000n, now);
      await expect(s.oracle.latestPrice()).to.be.revertedWithCustomError(s.oracle, "UsageOracleStalePrice");
    });

    it("refuses zero and negative answers", async function () {
      const s = await loadFixture(oracleFixture);
      for (const answer of [0n, -1n, -PRICE]) {
        await s.priceFeed.updateAnswer(answer);
        await expect(s.oracle.latestPrice())
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleNonPositivePrice")
          .withArgs(answer);
      }
    });

    it("refuses incomplete rounds: no update time, or answered in an earlier round", async function () {
      const s = await loadFixture(oracleFixture);
      const now = BigInt(await time.latest());
      await s.priceFeed.updateRoundData(7, PRICE, 0, now);
      await expect(s.oracle.latestPrice())
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleIncompleteRound")
        .withArgs(7, 7, 0);
      const feed = await ethers.deployContract("MockAggregator", [8]);
      await feed.setRound(5, PRICE, now, now, 4);
      await s.oracle.setPriceFeed(await feed.getAddress(), HEARTBEAT, MIN_PRICE, MAX_PRICE);
      await expect(s.oracle.latestPrice())
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleIncompleteRound")
        .withArgs(5, 4, now);
      await feed.setRound(5, PRICE, now, now, 5);
      await s.oracle.latestPrice();
    });

    it("refuses answers outside the governed range (a feed stuck at its circuit-breaker bound)", async function () {
      const s = await loadFixture(oracleFixture);
      for (const answer of [MIN_PRICE - 1n, MAX_PRICE + 1n]) {
        await s.priceFeed.updateAnswer(answer);
        await expect(s.oracle.latestPrice())
          .to.be.revertedWithCustomError(s.oracle, "UsageOraclePriceOutOfRange")
          .withArgs(answer, MIN_PRICE, MAX_PRICE);
      }
      for (const answer of [MIN_PRICE, MAX_PRICE]) {
        await s.priceFeed.updateAnswer(answer);
        expect((await s.oracle.latestPrice())[0]).to.equal(answer);
      }
    });

    it("refuses to price before a feed is set", async function () {
      const s = await loadFixture(oracleFixture);
      const bare = await ethers.deployContract("UsageOracle", [s.routerAddress, await s.functionsRouter.getAddress(), s.admin.address]);
      await expect(bare.latestPrice()).to.be.revertedWithCustomError(bare, "UsageOraclePriceFeedNotSet");
    });

    it("gives no price while the L2 sequencer is down", async function () {
      const s = await loadFixture(sequencerFixture);
      await s.oracle.latestPrice();
      const now = BigInt(await time.latest());
      await s.sequencer.updateRoundData(2, 1, now, now);
      await s.priceFeed.updateAnswer(PRICE); // a fresh price does not help
      await expect(s.oracle.latestPrice()).to.be.revertedWithCustomError(s.oracle, "UsageOracleSequencerDown").withArgs(now);
      await expect(s.oracle.usdToTokens(USD)).to.be.revertedWithCustomError(s.oracle, "UsageOracleSequencerDown");
    });

    it("gives no price within the grace period after the sequencer came back, and prices after it", async function () {
      const s = await loadFixture(sequencerFixture);
      const now = BigInt(await time.latest());
      await s.sequencer.updateRoundData(2, 1, now - 600n, now - 600n);
      await s.sequencer.updateRoundData(3, 0, now, now);
      await s.priceFeed.updateAnswer(PRICE);
      await expect(s.oracle.latestPrice())
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleSequencerGracePeriod")
        .withArgs(now, now + 1800n);
      await time.increaseTo(now + 1799n);
      await expect(s.oracle.latestPrice()).to.be.revertedWithCustomError(s.oracle, "UsageOracleSequencerGracePeriod");
      await time.increaseTo(now + 1800n);
      await s.priceFeed.updateAnswer(PRICE);
      expect((await s.oracle.latestPrice())[0]).to.equal(PRICE);
    });

    it("gives no price when the sequencer feed answers something other than a status", async function () {
      const s = await loadFixture(sequencerFixture);
      await s.sequencer.updateAnswer(2);
      await expect(s.oracle.latestPrice())
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleSequencerFeedInvalid")
        .withArgs(await s.sequencer.getAddress());
    });
  });

  describe("setPriceFeed", function () {
    it("sets feed, decimals, heartbeat and range (governance only)", async function () {
      const s = await loadFixture(oracleFixture);
      const feed = await ethers.deployContract("ChainlinkMockV3Aggregator", [6, 2_500_000n]);
      await expect(s.oracle.connect(s.stranger).setPriceFeed(await feed.getAddress(), 60, 1, 2))
        .to.be.revertedWithCustomError(s.oracle, "AccessControlUnauthorizedAccount")
        .withArgs(s.stranger.address, ethers.ZeroHash);
      await expect(s.oracle.setPriceFeed(await feed.getAddress(), 86_400, 1n, 10n ** 12n))
        .to.emit(s.oracle, "PriceFeedSet")
        .withArgs(await feed.getAddress(), 6, 86_400, 1n, 10n ** 12n);
      expect(await s.oracle.priceFeed()).to.equal(await feed.getAddress());
      expect(await s.oracle.priceFeedDecimals()).to.equal(6n);
      expect(await s.oracle.usdToTokens(USD)).to.equal((4n * AGPT) / 10n);
    });

    it("refuses a zero feed, a heartbeat out of range, bad bounds and feeds of more than 18 decimals", async function () {
      const s = await loadFixture(oracleFixture);
      const feed = await s.priceFeed.getAddress();
      await expect(s.oracle.setPriceFeed(ethers.ZeroAddress, 60, 1, 2)).to.be.revertedWithCustomError(s.oracle, "UsageOracleZeroAddress");
      for (const heartbeat of [59, 2 * 86_400 + 1]) {
        await expect(s.oracle.setPriceFeed(feed, heartbeat, 1, 2))
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleHeartbeatOutOfRange")
          .withArgs(heartbeat, 60, 2 * 86_400);
      }
      for (const [min, max] of [
        [0n, 10n],
        [11n, 10n],
        [1n, 2n ** 128n],
      ] as const) {
        await expect(s.oracle.setPriceFeed(feed, 60, min, max))
          .to.be.revertedWithCustomError(s.oracle, "UsageOraclePriceBoundsInvalid")
          .withArgs(min, max);
      }
      const feed19 = await ethers.deployContract("ChainlinkMockV3Aggregator", [19, 1n]);
      await expect(s.oracle.setPriceFeed(await feed19.getAddress(), 60, 1, 2))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleUnsupportedDecimals")
        .withArgs(19, 18);
    });
  });

  describe("Functions and verification settings", function () {
    it("setFunctionsConfig: governance only; non-zero ids; callback gas within Functions' limits", async function () {
      const s = await loadFixture(oracleFixture);
      await expect(s.oracle.connect(s.stranger).setFunctionsConfig(1, DON_ID, 300_000)).to.be.revertedWithCustomError(
        s.oracle,
        "AccessControlUnauthorizedAccount",
      );
      await expect(s.oracle.setFunctionsConfig(0, DON_ID, 300_000))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleInvalidFunctionsConfig")
        .withArgs(0, DON_ID);
      await expect(s.oracle.setFunctionsConfig(1, ethers.ZeroHash, 300_000))
        .to.be.revertedWithCustomError(s.oracle, "UsageOracleInvalidFunctionsConfig")
        .withArgs(1, ethers.ZeroHash);
      for (const gas of [236_999, 300_001]) {
        await expect(s.oracle.setFunctionsConfig(1, DON_ID, gas))
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleCallbackGasOutOfRange")
          .withArgs(gas, 237_000, 300_000);
      }
      await expect(s.oracle.setFunctionsConfig(SUBSCRIPTION_ID + 1n, DON_ID, 237_000))
        .to.emit(s.oracle, "FunctionsConfigSet")
        .withArgs(SUBSCRIPTION_ID + 1n, DON_ID, 237_000);
      expect(await s.oracle.subscriptionId()).to.equal(SUBSCRIPTION_ID + 1n);
      expect(await s.oracle.callbackGasLimit()).to.equal(237_000n);
    });

    it("setSecretsReference: governance or SECRETS_ROLE", async function () {
      const s = await loadFixture(oracleFixture);
      await expect(s.oracle.connect(s.stranger).setSecretsReference(1, 2))
        .to.be.revertedWithCustomError(s.oracle, "AccessControlUnauthorizedAccount")
        .withArgs(s.stranger.address, await s.oracle.SECRETS_ROLE());
      await s.oracle.grantRole(await s.oracle.SECRETS_ROLE(), s.stranger.address);
      await expect(s.oracle.connect(s.stranger).setSecretsReference(1, 2)).to.emit(s.oracle, "SecretsReferenceSet").withArgs(1, 2);
      await expect(s.oracle.setSecretsReference(0, 3)).to.emit(s.oracle, "SecretsReferenceSet").withArgs(0, 3);
      expect(await s.oracle.secretsVersion()).to.equal(3n);
    });

    it("setSource and setUsageApi: governance only; non-empty; the URL bounded", async function () {
      const s = await loadFixture(oracleFixture);
      await expect(s.oracle.connect(s.stranger).setSource("return 1")).to.be.revertedWithCustomError(
        s.oracle,
        "AccessControlUnauthorizedAccount",
      );
      await expect(s.oracle.setSource("")).to.be.revertedWithCustomError(s.oracle, "UsageOracleEmptySource");
      const code = "return Functions.encodeUint256(1)";
      await expect(s.oracle.setSource(code)).to.emit(s.oracle, "SourceSet").withArgs(ethers.id(code), code.length);
      expect(await s.oracle.source()).to.equal(code);
      await expect(s.oracle.connect(s.stranger).setUsageApi("https://x")).to.be.revertedWithCustomError(
        s.oracle,
        "AccessControlUnauthorizedAccount",
      );
      for (const url of ["", "https://" + "a".repeat(249)]) {
        await expect(s.oracle.setUsageApi(url))
          .to.be.revertedWithCustomError(s.oracle, "UsageOracleInvalidUrl")
          .withArgs(url.length, 256);
      }
      const url = "https://" + "a".repeat(248);
      await expect(s.oracle.setUsageApi(url)).to.emit(s.oracle, "UsageApiSet").withArgs(url);
      expect(await s.oracle.usageApiUrl()).to.equal(url);
    });

    it("setVerificationParams: governance only; each value in range", async function () {
      const s = await loadFixture(oracleFixture);
      await expect(s.oracle.connect(s.stranger).setVerificationParams(900, 3, 0)).to.be.revertedWithCustomError(
        s.oracle,
        "AccessControlUnauthorizedAccount",
      );
      const DAY = 86_400;
      const cases: [number, number, number, string, unknown[]][] = [
        [299, 3, 0, "UsageOracleRequestTimeoutOutOfRange", [299, 300, DAY]],
        [DAY + 1, 3, 0, "UsageOracleRequestTimeoutOutOfRange", [DAY + 1, 300, DAY]],
        [900, 0, 0, "UsageOracleMaxAttemptsOutOfRange", [0, 1, 10]],
        [900, 11, 0, "UsageOracleMaxAttemptsOutOfRange", [11, 1, 10]],
        [900, 3, 1001, "UsageOracleToleranceTooLarge", [1001, 1000]],
      ];
      for (const [timeout, attempts, bps, error, args] of cases) {
        await expect(s.oracle.setVerificationParams(timeout, attempts, bps))
          .to.be.revertedWithCustomError(s.oracle, error)
          .withArgs(...args);
      }
      await expect(s.oracle.setVerificationParams(DAY, 10, 1000))
        .to.emit(s.oracle, "VerificationParamsSet")
        .withArgs(DAY, 10, 1000);
      expect(await s.oracle.requestTimeout()).to.equal(BigInt(DAY));
      expect(await s.oracle.toleranceBps()).to.equal(1000n);
    });
  });
});
