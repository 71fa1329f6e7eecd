import { expect } from "chai";
import { network } from "hardhat";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

import { ROW_LEAF_ENCODING, rowLeaf, type Charge } from "../../relayer/batcher/rows-tree.js";
import {
  AGPT,
  BatchStatus,
  DAY,
  GPT4_PRICE,
  MIXTRAL_PRICE,
  RejectReason,
  deploySuite,
  expectSolvent,
  priceCap,
  receiptsRootOf,
  row,
  settle,
  type Suite,
} from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

async function fixture(): Promise<Suite> {
  return deploySuite(ethers);
}

describe("AutoPayLLM: settleBatch", function () {
  describe("a valid batch", function () {
    it("charges every row from deposits into escrow and records the batch", async function () {
      const s = await loadFixture(fixture);
      const [a, b] = s.payers;
      const rows: Charge[] = [
        row(a!.address, s.openai, s.gpt4, 1630n, GPT4_PRICE),
        row(a!.address, s.groq, s.mixtral, 1250n, MIXTRAL_PRICE),
        row(b!.address, s.openai, s.gpt4, 9000n, GPT4_PRICE),
      ];
      const total = rows.reduce((sum, r) => sum + r.amount, 0n);
      const before = await s.router.totalDeposits();

      const result = await settle(s, rows);

      expect(result.rejected.size).to.equal(0);
      expect(result.escrowed).to.equal(total);
      expect(await s.router.balanceOf(a!.address)).to.equal(1_000n * AGPT - rows[0]!.amount - rows[1]!.amount);
      expect(await s.router.balanceOf(b!.address)).to.equal(1_000n * AGPT - rows[2]!.amount);
      expect(await s.router.totalDeposits()).to.equal(before - total);
      expect(await s.router.totalEscrow()).to.equal(total);
      const info = await s.router.batchInfo(result.batchId);
      expect(info.status).to.equal(BatchStatus.Escrowed);
      expect(info.rowCount).to.equal(3n);
      expect(info.acceptedCount).to.equal(3n);
      expect(info.receiptsRoot).to.equal(receiptsRootOf(result.batchId));
      expect(info.releaseAt - info.settledAt).to.equal(3600n);
      expect(info.shareCount).to.equal(2n);
      const shares = await Promise.all([0, 1].map((k) => s.router.batchShare(result.batchId, k)));
      expect(shares.map(([p, a]) => [Number(p), a])).to.deep.equal([
        [s.openai, rows[0]!.amount + rows[2]!.amount],
        [s.groq, rows[1]!.amount],
      ]);
      await expectSolvent(s);
    });

    it("emits BatchSettled with the rows root, receipts root, counts, escrow, release time and CID", async function () {
      const s = await loadFixture(fixture);
      const rows = [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)];
      const batchId = ethers.id("batch-event");
      const tree = StandardMerkleTree.of([rowLeaf(0, rows[0]!)], [...ROW_LEAF_ENCODING], { sortLeaves: false });
      const tx = s.router.connect(s.relayer).settleBatch(batchId, rows, receiptsRootOf(batchId), CID);
      const settledAt = BigInt(await time.latest()) + 1n;
      const releaseAt = settledAt + 3600n;
      await expect(tx)
        .to.emit(s.router, "BatchSettled")
        .withArgs(batchId, tree.root, receiptsRootOf(batchId), 1n, 0n, rows[0]!.amount, releaseAt, settledAt - (settledAt % 3600n), CID);
    });

    it("stores the root of OpenZeppelin's StandardMerkleTree over the accepted rows, indices kept", async function () {
      const s = await loadFixture(fixture);
      const [a, b] = s.payers;
      const rows: Charge[] = [
        row(a!.address, s.openai, s.gpt4, 100n, GPT4_PRICE),
        { ...row(b!.address, s.openai, s.gpt4, 100n, GPT4_PRICE), amount: 0n }, // rejected: ZeroAmount
        row(b!.address, s.groq, s.mixtral, 7777n, MIXTRAL_PRICE),
        row(a!.address, s.groq, s.mixtral, 3n, MIXTRAL_PRICE),
      ];
      const result = await settle(s, rows);
      const accepted = [0, 2, 3].map((i) => rowLeaf(i, rows[i]!));
      const expected = StandardMerkleTree.of(accepted, [...ROW_LEAF_ENCODING], { sortLeaves: false }).root;
      expect(result.rowsRoot).to.equal(expected);
      expect((await s.router.batchInfo(result.batchId)).rowsRoot).to.equal(expected);
      expect(result.tree.root).to.equal(expected);
    });

    it("handles a payer's rows that are not contiguous", async function () {
      const s = await loadFixture(fixture);
      const [a, b] = s.payers;
      const rows = [
        row(a!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE),
        row(b!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE),
        row(a!.address, s.groq, s.mixtral, 1000n, MIXTRAL_PRICE),
      ];
      await settle(s, rows);
      expect(await s.router.balanceOf(a!.address)).to.equal(1_000n * AGPT - rows[0]!.amount - rows[2]!.amount);
      const account = await s.router.accountOf(a!.address);
      expect(account.spentToday).to.equal(rows[0]!.amount + rows[2]!.amount);
      await expectSolvent(s);
    });

    it("tracks each model's spend today across payers and batches", async function () {
      const s = await loadFixture(fixture);
      const [a, b] = s.payers;
      const r1 = row(a!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const r2 = row(b!.address, s.openai, s.gpt4, 2000n, GPT4_PRICE);
      await settle(s, [r1]);
      await settle(s, [r2]);
      expect((await s.router.modelInfo(s.gpt4)).spentToday).to.equal(r1.amount + r2.amount);
      expect((await s.router.modelInfo(s.mixtral)).spentToday).to.equal(0n);
    });
  });

  describe("per-row rules: a bad row is rejected with its reason, the rest settles", function () {
    async function rejects(s: Suite, bad: Charge, reason: RejectReason) {
      const good = row(s.payers[3]!.address, s.groq, s.mixtral, 500n, MIXTRAL_PRICE);
      const before = await s.router.balanceOf(bad.user === ethers.ZeroAddress ? s.payers[0]!.address : bad.user);
      const escrowBefore = await s.router.totalEscrow();
      const batchId = ethers.id(`reject-${reason}-${bad.provider}-${bad.model}-${bad.amount}`);
      await expect(s.router.connect(s.relayer).settleBatch(batchId, [good, bad], receiptsRootOf(batchId), CID))
        .to.emit(s.router, "RowRejected")
        .withArgs(batchId, 1n, bad.user, reason);
      const info = await s.router.batchInfo(batchId);
      expect(info.acceptedCount).to.equal(1n);
      expect(info.rowCount).to.equal(2n);
      if (bad.user !== ethers.ZeroAddress) expect(await s.router.balanceOf(bad.user)).to.equal(before);
      expect(await s.router.totalEscrow()).to.equal(escrowBefore + good.amount);
      await expectSolvent(s);
    }

    it("rejects an unknown provider (id 0 or above the registry)", async function () {
      const s = await loadFixture(fixture);
      const user = s.payers[0]!.address;
      await rejects(s, row(user, 0, s.gpt4, 100n, GPT4_PRICE), RejectReason.UnknownProvider);
      await rejects(s, row(user, 3, s.gpt4, 100n, GPT4_PRICE), RejectReason.UnknownProvider);
    });

    it("rejects a model that is unknown or has no price cap: billable only once governance priced it", async function () {
      const s = await loadFixture(fixture);
      const user = s.payers[0]!.address;
      await rejects(s, row(user, s.openai, 0, 100n, GPT4_PRICE), RejectReason.ModelNotPriced);
      await rejects(s, row(user, s.openai, 9, 100n, GPT4_PRICE), RejectReason.ModelNotPriced);
      await s.router.setModelBudget("claude-3", 10n * AGPT); // registered (id 3) but never priced
      await rejects(s, row(user, s.openai, 3, 100n, GPT4_PRICE), RejectReason.ModelNotPriced);
      await s.router.setModelPrice("gpt-4-turbo", 0n); // unpriced again
      await rejects(s, row(user, s.openai, s.gpt4, 100n, GPT4_PRICE), RejectReason.ModelNotPriced);
    });

    it("rejects a zero-amount row", async function () {
      const s = await loadFixture(fixture);
      await rejects(s, { ...row(s.payers[0]!.address, s.openai, s.gpt4, 100n, GPT4_PRICE), amount: 0n }, RejectReason.ZeroAmount);
    });

    it("rejects the zero address as payer", async function () {
      const s = await loadFixture(fixture);
      await rejects(s, row(ethers.ZeroAddress, s.openai, s.gpt4, 100n, GPT4_PRICE), RejectReason.InvalidPayer);
    });

    it("rejects a charge above ceil(tokens * cap / 1000) and accepts exactly the cap", async function () {
      const s = await loadFixture(fixture);
      const user = s.payers[0]!.address;
      const atCap = row(user, s.openai, s.gpt4, 1234n, GPT4_PRICE);
      await rejects(s, { ...atCap, amount: atCap.amount + 1n }, RejectReason.OverPriceCap);
      await rejects(s, { ...atCap, tokens: 0n }, RejectReason.OverPriceCap);
      const ok = await settle(s, [atCap]);
      expect(ok.rejected.size).to.equal(0);
      expect(await s.router.maxCharge(s.gpt4, 1234n)).to.equal(atCap.amount);
    });

    it("rounds the cap up so no call with usage is free", async function () {
      const s = await loadFixture(fixture);
      await s.router.setModelPrice("tiny", 1n); // 1 unit per 1k tokens
      const tiny = Number(await s.router.modelId("tiny"));
      expect(await s.router.maxCharge(tiny, 1n)).to.equal(1n);
      expect(await s.router.maxCharge(tiny, 1000n)).to.equal(1n);
      expect(await s.router.maxCharge(tiny, 1001n)).to.equal(2n);
      const result = await settle(s, [{ user: s.payers[0]!.address, provider: s.openai, model: tiny, tokens: 1n, amount: 1n }]);
      expect(result.rejected.size).to.equal(0);
      expect(result.escrowed).to.equal(1n);
    });

    it("enforces the payer's own daily cap, per UTC day", async function () {
      const s = await loadFixture(fixture);
      const payer = s.payers[0]!;
      const r = row(payer.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE); // 1.2 AGPT
      await expect(s.router.connect(payer).setDailyCap(2n * AGPT))
        .to.emit(s.router, "DailyCapSet")
        .withArgs(payer.address, 2n * AGPT);
      const first = await settle(s, [r, r]); // 2.4 AGPT: the second row breaks the cap
      expect([...first.rejected]).to.deep.equal([[1, RejectReason.OverDailyCap]]);
      await rejects(s, r, RejectReason.OverDailyCap);
      expect((await s.router.accountOf(payer.address)).spentToday).to.equal(r.amount);

      await time.increase(DAY);
      expect((await s.router.accountOf(payer.address)).spentToday).to.equal(0n);
      const nextDay = await settle(s, [r]);
      expect(nextDay.rejected.size).to.equal(0);
      await s.router.connect(payer).setDailyCap(0n); // no cap
      expect((await settle(s, [r, r, r])).rejected.size).to.equal(0);
    });

    it("enforces the model's governed daily budget across payers, per UTC day", async function () {
      const s = await loadFixture(fixture);
      const [a, b] = s.payers;
      const r = row(a!.address, s.openai, s.gpt4, 10_000n, GPT4_PRICE);
      await s.router.setModelBudget("gpt-4-turbo", 2n * r.amount);
      const result = await settle(s, [r, { ...r, user: b!.address }, { ...r, user: b!.address }]);
      expect([...result.rejected]).to.deep.equal([[2, RejectReason.OverModelBudget]]);
      await rejects(s, r, RejectReason.OverModelBudget);
      expect((await s.router.modelInfo(s.gpt4)).spentToday).to.equal(2n * r.amount);
      // other models are not limited by it
      expect((await settle(s, [row(a!.address, s.groq, s.mixtral, 10_000n, MIXTRAL_PRICE)])).rejected.size).to.equal(0);
      await time.increase(DAY);
      expect((await settle(s, [r, r])).rejected.size).to.equal(0);
    });

    it("rejects a row the deposit and allowance cannot cover", async function () {
      const s = await loadFixture(fixture);
      const poor = s.stranger;
      await rejects(s, row(poor.address, s.openai, s.gpt4, 1000n, GPT4_PRICE), RejectReason.InsufficientFunds);
      const payer = s.payers[0]!;
      const huge = { ...row(payer.address, s.openai, s.gpt4, 100_000_000n, GPT4_PRICE) }; // 12,000 AGPT
      await s.token.connect(payer).approve(s.routerAddress, 0n);
      await rejects(s, huge, RejectReason.InsufficientFunds);
      expect(await s.router.balanceOf(payer.address)).to.equal(1_000n * AGPT);
    });
  });

  describe("batch-level checks revert the whole call with a named error", function () {
    it("settles a batch id only once (a replayed batch)", async function () {
      const s = await loadFixture(fixture);
      const rows = [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)];
      const first = await settle(s, rows);
      await expect(settle(s, rows, { batchId: first.batchId }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchAlreadySettled")
        .withArgs(first.batchId);
      // even with different content under the same id
      await expect(settle(s, [row(s.payers[1]!.address, s.groq, s.mixtral, 5n, MIXTRAL_PRICE)], { batchId: first.batchId }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMBatchAlreadySettled");
      expect(await s.router.totalEscrow()).to.equal(rows[0]!.amount);
    });

    it("refuses a batch from anyone without RELAYER_ROLE", async function () {
      const s = await loadFixture(fixture);
      const rows = [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)];
      for (const signer of [s.stranger, s.admin, s.arbiter, s.pauser, s.payers[0]!]) {
        await expect(settle(s, rows, { signer }))
          .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
          .withArgs(signer.address, await s.router.RELAYER_ROLE());
      }
    });

    it("refuses malformed batches", async function () {
      const s = await loadFixture(fixture);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const root = receiptsRootOf(ethers.id("malformed"));
      const relayer = s.router.connect(s.relayer);
      await expect(relayer.settleBatch(ethers.ZeroHash, [r], root, CID))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidBatch")
        .withArgs(ethers.ZeroHash);
      await expect(relayer.settleBatch(ethers.id("e"), [], root, CID)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMEmptyBatch",
      );
      await expect(relayer.settleBatch(ethers.id("r"), [r], ethers.ZeroHash, CID)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidReceiptsRoot",
      );
      await expect(relayer.settleBatch(ethers.id("c"), [r], root, ""))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidCid")
        .withArgs(0n);
      await expect(relayer.settleBatch(ethers.id("c"), [r], root, "b".repeat(129)))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidCid")
        .withArgs(129n);
      const max = await s.router.MAX_BATCH_ROWS();
      await expect(relayer.settleBatch(ethers.id("big"), Array(Number(max) + 1).fill(r), root, CID))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMTooManyRows")
        .withArgs(max + 1n, max);
    });

    it("refuses a row with non-canonical (dirty) ABI encoding", async function () {
      const s = await loadFixture(fixture);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const batchId = ethers.id("dirty");
      const data = s.router.interface.encodeFunctionData("settleBatch", [batchId, [r, r], receiptsRootOf(batchId), CID]);
      // Row 1's provider word: selector(4) + head(4 words) + length(1 word) + row 0 (5 words) + user(1 word).
      const offset = 2 + 2 * (4 + 32 * (4 + 1 + 5 + 1));
      const dirty = `${data.slice(0, offset)}ff${data.slice(offset + 2)}`;
      await expect(s.relayer.sendTransaction({ to: s.routerAddress, data: dirty }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMMalformedRow")
        .withArgs(1n);
    });

    it("stops while paused and resumes after", async function () {
      const s = await loadFixture(fixture);
      const rows = [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)];
      await s.router.connect(s.pauser).pause();
      await expect(settle(s, rows)).to.be.revertedWithCustomError(s.router, "EnforcedPause");
      await s.router.connect(s.pauser).unpause();
      expect((await settle(s, rows)).rejected.size).to.equal(0);
    });
  });

  describe("settleBatchAt: the usage bucket of the calls", function () {
    it("commits the calls' bucket, stored and emitted; the 4-argument form commits the bucket of the settlement time", async function () {
      const s = await loadFixture(fixture);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const now = BigInt(await time.latest());
      const old = now - (now % 3600n) - 5n * 3600n;
      const late = await settle(s, [r], { callsFrom: old });
      expect(late.callsFrom).to.equal(old);
      const info = await s.router.batchInfo(late.batchId);
      expect([info.callsFrom, info.rowCount, info.acceptedCount, info.shareCount, info.sequencerRound]).to.deep.equal([old, 1n, 1n, 1n, 0n]);
      expect(info.settledAt).to.be.greaterThan(old + 5n * 3600n - 1n);
      const onTime = await settle(s, [r]);
      const at = (await s.router.batchInfo(onTime.batchId)).settledAt;
      expect(onTime.callsFrom).to.equal(at - (at % 3600n));
    });

    it("refuses a bucket not aligned to usageBucket, or in the future; only the relayer, not while paused", async function () {
      const s = await loadFixture(fixture);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const now = BigInt(await time.latest());
      const bucket = now - (now % 3600n);
      const relayer = s.router.connect(s.relayer);
      await expect(relayer.settleBatchAt(ethers.id("a"), [r], receiptsRootOf(ethers.id("a")), CID, bucket + 60n))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMInvalidInterval")
        .withArgs(bucket + 60n, 3600n);
      await expect(relayer.settleBatchAt(ethers.id("a"), [r], receiptsRootOf(ethers.id("a")), CID, bucket + 3600n)).to.be.revertedWithCustomError(
        s.router,
        "AutoPayLLMInvalidInterval",
      );
      await expect(
        s.router.connect(s.stranger).settleBatchAt(ethers.id("a"), [r], receiptsRootOf(ethers.id("a")), CID, bucket),
      ).to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount");
      await s.router.connect(s.pauser).pause();
      await expect(relayer.settleBatchAt(ethers.id("a"), [r], receiptsRootOf(ethers.id("a")), CID, bucket)).to.be.revertedWithCustomError(
        s.router,
        "EnforcedPause",
      );
    });

    it("settles a receipts root once, under any batch id (fails on the previous code)", async function () {
      const s = await loadFixture(fixture);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const root = receiptsRootOf(ethers.id("receipts"));
      const first = await settle(s, [r], { batchId: ethers.id("first"), receiptsRoot: root });
      await expect(settle(s, [r], { batchId: ethers.id("again"), receiptsRoot: root }))
        .to.be.revertedWithCustomError(s.router, "AutoPayLLMReceiptsRootUsed")
        .withArgs(root, first.batchId);
    });

    it("setUsageBucket: governance's, a divisor of a day within range, and only before the first batch", async function () {
      const s = await deploySuite(ethers);
      expect(await s.router.usageBucket()).to.equal(3600n);
      await expect(s.router.connect(s.stranger).setUsageBucket(60)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      for (const bad of [59, 7, 86_401, 3601]) {
        await expect(s.router.setUsageBucket(bad))
          .to.be.revertedWithCustomError(s.router, "AutoPayLLMUsageBucketOutOfRange")
          .withArgs(bad, 60, 86_400);
      }
      await expect(s.router.setUsageBucket(900)).to.emit(s.router, "UsageBucketSet").withArgs(900);
      const r = row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE);
      const settled = await settle(s, [r]);
      expect(settled.callsFrom % 900n).to.equal(0n);
      await expect(s.router.setUsageBucket(60)).to.be.revertedWithCustomError(s.router, "AutoPayLLMUsageBucketLocked");
    });

    it("setVerifier: governance's; a contract or zero", async function () {
      const s = await loadFixture(fixture);
      await expect(s.router.connect(s.stranger).setVerifier(s.routerAddress)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      await expect(s.router.setVerifier(s.stranger.address)).to.be.revertedWithCustomError(s.router, "AutoPayLLMZeroAddress");
      await expect(s.router.setVerifier(s.routerAddress)).to.emit(s.router, "VerifierSet").withArgs(s.routerAddress);
      await expect(s.router.setVerifier(ethers.ZeroAddress)).to.emit(s.router, "VerifierSet").withArgs(ethers.ZeroAddress);
    });
  });
});
