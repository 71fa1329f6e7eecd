import { expect } from "chai";
import { network } from "hardhat";

import type { Charge } from "../../relayer/batcher/rows-tree.js";
import type { ChainlinkMockV3Aggregator } from "../../typechain-types/index.js";
import { AGPT, deploySuite, expectSolvent, GPT4_PRICE, row, rowRefs, settle, type Settlement, type Suite } from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const GRACE = 1800n;
const NEVER = ethers.MaxUint256;
const UP = 0;
const DOWN = 1;

interface Sequenced extends Suite {
  feed: ChainlinkMockV3Aggregator;
  rows: Charge[];
  batch: Settlement;
  settledAt: bigint;
  releaseAt: bigint;
}

/**
 * A settled batch (window 3,600 s) on a chain whose sequencer-uptime feed says "up since a day before"; grace
 * 1,800 s. Status changes are recorded the way Chainlink's feed records them: a new round only on a change.
 */
async function sequencedFixture(): Promise<Sequenced> {
  const s = await deploySuite(ethers);
  const feed = await ethers.deployContract("ChainlinkMockV3Aggregator", [0, 0]);
  const now = BigInt(await time.latest());
  await feed.updateRoundData(1, UP, now - 86_400n, now - 86_400n);
  await s.router.setSequencerUptimeFeed(await feed.getAddress(), GRACE);
  await s.router.setDisputeBond(AGPT);
  const rows = [row(s.payers[0]!.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE)];
  const batch = await settle(s, rows);
  const info = await s.router.batchInfo(batch.batchId);
  return { ...s, feed, rows, batch, settledAt: info.settledAt, releaseAt: info.releaseAt };
}

/** Records a status change at `at` (the feed's startedAt and updatedAt). */
async function status(s: Sequenced, answer: number, at: bigint) {
  await s.feed.updateRoundData((await s.feed.latestRound()) + 1n, answer, at, at);
}

function dispute(s: Sequenced) {
  return s.router.connect(s.payers[0]!).dispute(rowRefs([[s.batch, 0]]));
}

function closesAt(s: Sequenced) {
  return s.router.disputeClosesAt(s.batch.batchId);
}

describe("AutoPayLLM: dispute window over L2 sequencer outages", function () {
  describe("setSequencerUptimeFeed", function () {
    it("is governance's; sets feed and grace; zero turns the extension off", async function () {
      const s = await loadFixture(sequencedFixture);
      const feed = await s.feed.getAddress();
      await expect(s.router.connect(s.stranger).setSequencerUptimeFeed(feed, GRACE))
        .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
        .withArgs(s.stranger.address, ethers.ZeroHash);
      await expect(s.router.setSequencerUptimeFeed(feed, 3600)).to.emit(s.router, "SequencerUptimeFeedSet").withArgs(feed, 3600);
      expect(await s.router.sequencerUptimeFeed()).to.equal(feed);
      expect(await s.router.sequencerGracePeriod()).to.equal(3600n);
      await status(s, DOWN, s.settledAt + 10n);
      expect(await closesAt(s)).to.equal(NEVER);
      await expect(s.router.setSequencerUptimeFeed(ethers.ZeroAddress, 0))
        .to.emit(s.router, "SequencerUptimeFeedSet")
        .withArgs(ethers.ZeroAddress, 0);
      expect(await closesAt(s)).to.equal(s.releaseAt);
    });

    it("refuses a grace period above the maximum, or any grace without a feed", async function () {
      const s = await loadFixture(sequencedFixture);
      const max = await s.router.MAX_SEQUENCER_GRACE();
      await expect(s.router.setSequencerUptimeFeed(await s.feed.getAddress(), max + 1n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMGracePeriodOutOfRange")
        .withArgs(max + 1n, max);
      await s.router.setSequencerUptimeFeed(await s.feed.getAddress(), max);
      await expect(s.router.setSequencerUptimeFeed(ethers.ZeroAddress, 1))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMGracePeriodOutOfRange")
        .withArgs(1, 0);
    });

    it("refuses a feed that is no contract, reverts, answers no status, or is not initialised", async function () {
      const s = await loadFixture(sequencedFixture);
      const bad = await ethers.deployContract("MockAggregator", [0]);
      const now = BigInt(await time.latest());
      const cases: [string, () => Promise<unknown>][] = [
        [s.stranger.address, async () => {}],
        [await bad.getAddress(), () => bad.setRound(1, 2, now, now, 1)], // answer 2
        [await bad.getAddress(), () => bad.setRound(1, 0, 0, 0, 1)], // startedAt 0: an uninitialised Arbitrum feed
        [await bad.getAddress(), () => bad.setReverts(true, false)],
      ];
      for (const [feed, arrange] of cases) {
        await arrange();
        await expect(s.router.setSequencerUptimeFeed(feed, GRACE))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidSequencerFeed")
          .withArgs(feed);
      }
    });
  });

  describe("disputeClosesAt, dispute and release", function () {
    it("closes at releaseAt when the sequencer was up throughout", async function () {
      const s = await loadFixture(sequencedFixture);
      expect(await closesAt(s)).to.equal(s.releaseAt);
      await time.increaseTo(s.releaseAt);
      await expect(dispute(s)).to.be.revertedWithCustomError(s.router, "AutoPayLLMNothingToHold");
      await expect(s.router.release(s.batch.batchId)).to.emit(s.router, "BatchReleased");
    });

    it("cannot close while the sequencer is down; disputes stay possible and release waits", async function () {
      const s = await loadFixture(sequencedFixture);
      await status(s, DOWN, s.settledAt + 600n);
      expect(await closesAt(s)).to.equal(NEVER);
      await time.increaseTo(s.releaseAt + 86_400n);
      await expect(s.router.release(s.batch.batchId))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMWindowOpen")
        .withArgs(s.batch.batchId, NEVER);
      await expect(dispute(s)).to.emit(s.router, "DisputeOpened"); // e.g. forced in through the L1 inbox
      await expectSolvent(s);
    });

    it("after the sequencer is back, closes at up-time + grace, not before", async function () {
      const s = await loadFixture(sequencedFixture);
      const up = s.releaseAt + 7200n;
      await status(s, DOWN, s.settledAt + 600n);
      await status(s, UP, up);
      expect(await closesAt(s)).to.equal(up + GRACE);
      await time.setNextBlockTimestamp(up + GRACE - 2n);
      await expect(dispute(s)).to.emit(s.router, "DisputeOpened");
      await time.setNextBlockTimestamp(up + GRACE - 1n);
      await expect(s.router.release(s.batch.batchId))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMWindowOpen")
        .withArgs(s.batch.batchId, up + GRACE);
      await time.setNextBlockTimestamp(up + GRACE);
      await expect(s.router.release(s.batch.batchId)).to.emit(s.router, "BatchReleased");
    });

    it("an outage that ended early in the window leaves releaseAt when its grace ends before it", async function () {
      const s = await loadFixture(sequencedFixture);
      await status(s, DOWN, s.settledAt + 10n);
      await status(s, UP, s.settledAt + 20n); // + grace 1,800 < window 3,600
      expect(await closesAt(s)).to.equal(s.releaseAt);
      await status(s, DOWN, s.settledAt + 1000n);
      await status(s, UP, s.releaseAt - 60n); // grace runs past releaseAt
      expect(await closesAt(s)).to.equal(s.releaseAt - 60n + GRACE);
    });

    it("a batch settled during an outage cannot close until the sequencer is back plus grace", async function () {
      const s = await loadFixture(sequencedFixture);
      await status(s, DOWN, s.settledAt - 100n);
      expect(await closesAt(s)).to.equal(NEVER);
      await status(s, UP, s.settledAt + 100n);
      expect(await closesAt(s)).to.equal(s.releaseAt); // back early: the window had its full length after
      await status(s, DOWN, s.releaseAt + 10n); // and an outage after that does not reopen it
      expect(await closesAt(s)).to.equal(s.releaseAt);
    });

    it("an outage that starts after the window closed does not reopen it, during or after the outage", async function () {
      const s = await loadFixture(sequencedFixture);
      await time.increaseTo(s.releaseAt + 100n);
      await status(s, DOWN, s.releaseAt + 100n);
      expect(await closesAt(s)).to.equal(s.releaseAt);
      await expect(dispute(s)).to.be.revertedWithCustomError(s.router, "AutoPayLLMNothingToHold");
      await status(s, UP, s.releaseAt + 5000n);
      expect(await closesAt(s)).to.equal(s.releaseAt);
      await expect(s.router.release(s.batch.batchId)).to.emit(s.router, "BatchReleased");
    });

    it("an outage starting exactly at releaseAt extends the window (the sequencer was not up at its close)", async function () {
      const s = await loadFixture(sequencedFixture);
      await status(s, DOWN, s.releaseAt);
      expect(await closesAt(s)).to.equal(NEVER);
      await status(s, UP, s.releaseAt + 100n);
      expect(await closesAt(s)).to.equal(s.releaseAt + 100n + GRACE);
    });

    it("a second outage within the grace of the first extends the window again", async function () {
      const s = await loadFixture(sequencedFixture);
      const up1 = s.releaseAt - 100n;
      await status(s, DOWN, s.settledAt + 100n);
      await status(s, UP, up1);
      await status(s, DOWN, up1 + GRACE - 1n);
      expect(await closesAt(s)).to.equal(NEVER);
      await status(s, UP, up1 + GRACE + 500n);
      expect(await closesAt(s)).to.equal(up1 + GRACE + 500n + GRACE);
    });

    it("a second outage after the grace of the first has ended does not", async function () {
      const s = await loadFixture(sequencedFixture);
      const up1 = s.releaseAt - 100n;
      await status(s, DOWN, s.settledAt + 100n);
      await status(s, UP, up1);
      await status(s, DOWN, up1 + GRACE + 1n);
      expect(await closesAt(s)).to.equal(up1 + GRACE);
      await status(s, UP, up1 + GRACE + 500n);
      expect(await closesAt(s)).to.equal(up1 + GRACE);
    });

    it("a batch settled before the feed was set reads its history from the round that was latest then; unreadable history never closes", async function () {
      const s = await loadFixture(sequencedFixture);
      const feed = await ethers.deployContract("MockAggregator", [0]);
      // the new feed's latest round when it is set: a proxy's first round of a new phase, down since after releaseAt
      await feed.setRound(2n ** 64n + 1n, DOWN, s.releaseAt + 100n, s.releaseAt + 100n, 2n ** 64n + 1n);
      await s.router.setSequencerUptimeFeed(await feed.getAddress(), GRACE);
      expect(await closesAt(s)).to.equal(NEVER); // down now
      await feed.setRound(2n ** 64n + 2n, UP, s.releaseAt + 200n, s.releaseAt + 200n, 2n ** 64n + 2n);
      expect(await closesAt(s)).to.equal(s.releaseAt + 200n + GRACE);
      await feed.setReverts(false, true); // the history reverts: unknown, so never closes
      expect(await closesAt(s)).to.equal(NEVER);
      await feed.setReverts(false, false);
      expect(await closesAt(s)).to.equal(s.releaseAt + 200n + GRACE);
      // a batch settled now reads from the round of its own settlement
      const later = await settle(s, s.rows, { callsFrom: s.batch.callsFrom });
      const info = await s.router.batchInfo(later.batchId);
      expect(info.sequencerRound).to.equal(2n ** 64n + 2n);
      // (that round's start lies after this batch's settlement in this made-up history: it gets the grace)
      const expected = info.releaseAt > s.releaseAt + 200n + GRACE ? info.releaseAt : s.releaseAt + 200n + GRACE;
      expect(await s.router.disputeClosesAt(later.batchId)).to.equal(expected);
    });

    it("follows a proxy's phase change: from the last round of one phase to the first of the next", async function () {
      const s = await loadFixture(sequencedFixture);
      const feed = await ethers.deployContract("MockAggregator", [0]);
      const last = (1n << 64n) | 5n; // round 5 of phase 1
      await feed.setRound(last, UP, s.settledAt - 10n, s.settledAt - 10n, last);
      await s.router.setSequencerUptimeFeed(await feed.getAddress(), GRACE);
      const batch = await settle(s, s.rows, { callsFrom: s.batch.callsFrom });
      const info = await s.router.batchInfo(batch.batchId);
      // phase 2 starts with an outage inside the window, then up again
      await feed.setRound((2n << 64n) | 1n, DOWN, info.settledAt + 100n, info.settledAt + 100n, (2n << 64n) | 1n);
      expect(await s.router.disputeClosesAt(batch.batchId)).to.equal(NEVER);
      await feed.setRound((2n << 64n) | 2n, UP, info.settledAt + 200n, info.settledAt + 200n, (2n << 64n) | 2n);
      expect(await s.router.disputeClosesAt(batch.batchId)).to.equal(info.releaseAt);
    });

    it("a latest round that reverts or answers no status blocks release until governance replaces the feed", async function () {
      const s = await loadFixture(sequencedFixture);
      const feed = await ethers.deployContract("MockAggregator", [0]);
      await feed.setRound(1, UP, s.settledAt - 10n, s.settledAt - 10n, 1);
      await s.router.setSequencerUptimeFeed(await feed.getAddress(), GRACE);
      await time.increaseTo(s.releaseAt);
      await feed.setReverts(true, false);
      expect(await closesAt(s)).to.equal(NEVER);
      await feed.setReverts(false, false);
      await feed.setRound(2, 7, s.settledAt, s.settledAt, 2);
      await expect(s.router.release(s.batch.batchId)).to.be.revertedWithCustomError(s.router, "AutoPayLLMWindowOpen");
      await s.router.setSequencerUptimeFeed(ethers.ZeroAddress, 0);
      await expect(s.router.release(s.batch.batchId)).to.emit(s.router, "BatchReleased");
    });

    it("P4: a closed window stays closed however many status changes follow (fails on the previous code, which read 8 rounds back from the latest)", async function () {
      const s = await loadFixture(sequencedFixture);
      await time.increaseTo(s.releaseAt + 5n);
      let at = s.releaseAt + 10n;
      for (let i = 0; i < 20; i++) {
        await status(s, i % 2 === 0 ? DOWN : UP, at);
        at += 10n;
      }
      expect(await closesAt(s)).to.equal(s.releaseAt);
      await expect(dispute(s)).to.be.revertedWithCustomError(s.router, "AutoPayLLMNothingToHold");
      await expect(s.router.release(s.batch.batchId)).to.emit(s.router, "BatchReleased");
    });

    it("walks many status changes inside the window forward to the exact close", async function () {
      const s = await loadFixture(sequencedFixture);
      let at = s.settledAt + 10n;
      for (let i = 0; i < 12; i++) {
        await status(s, i % 2 === 0 ? DOWN : UP, at);
        at += 10n;
      }
      // the last outage ended at `at - 10`: its grace ends before releaseAt
      expect(await closesAt(s)).to.equal(s.releaseAt);
    });

    it("reads the whole history when it is within 8 rounds", async function () {
      const s = await loadFixture(sequencedFixture);
      let at = s.releaseAt + 10n;
      for (let i = 0; i < 6; i++) {
        await status(s, i % 2 === 0 ? DOWN : UP, at);
        at += 10n;
      }
      expect(await closesAt(s)).to.equal(s.releaseAt);
    });

    it("unknown batches have no window", async function () {
      const s = await loadFixture(sequencedFixture);
      await expect(s.router.disputeClosesAt(ethers.id("nope")))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMUnknownBatch")
        .withArgs(ethers.id("nope"));
    });
  });
});
