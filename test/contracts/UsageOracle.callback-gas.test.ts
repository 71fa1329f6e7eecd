/**
 * P5: the oracle's limits are measured, not guessed. The Functions callback must resolve a dispute within
 * `callbackGasLimit`; `UsageOracle.MIN_CALLBACK_GAS` is the measured worst case plus 25 %, and a resolution runs at
 * exactly that minimum. (The previous code accepted 100,000, with which every answer ran out of gas.)
 *
 * The worst case writes every slot a resolution touches from zero: the payer's deposit (the row and the bond were
 * pulled from its allowance), the provider's credits, the interval's refunded tokens, and the router's total deposits
 * and credits (no other payer has a deposit), with a partial refund so both sides are paid. The failure path is
 * measured too, with the longest error the source can throw.
 */
import { expect } from "chai";
import hre, { network } from "hardhat";

import { toFulfillment } from "../../oracle/functions/simulator.js";
import {
  deliver,
  deployOracleSuite,
  DON_ID,
  openDispute,
  runRequest,
  sentRequest,
  SUBSCRIPTION_ID,
  type OracleSuite,
} from "../helpers/oracle.js";
import { AGPT, GPT4_PRICE, row, settle, type Settlement } from "../helpers/suite.js";
import { UsageServer } from "../oracle/usage-server.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const HOUR = 3600n;
const MAX_CALLBACK_GAS = 300_000;
const server = new UsageServer("test-usage-key-0123456789");

interface Worst extends OracleSuite {
  batch: Settlement;
  bucket: bigint;
}

/** Every deposit withdrawn; payer A's row and its bond come from its allowance; nothing credited yet. */
async function worstFixture(): Promise<Worst> {
  const s = await deployOracleSuite(ethers, server.url, { verifier: false });
  for (const payer of s.payers) await s.router.connect(payer).withdraw(await s.router.balanceOf(payer.address));
  await s.token.connect(s.payers[0]!).approve(s.routerAddress, 100n * AGPT);
  const now = BigInt(await time.latest());
  const bucket = now - (now % HOUR) - HOUR;
  const charge = row(s.payers[0]!.address, s.openai, s.gpt4, 100_000n, GPT4_PRICE);
  const batch = await settle(s, [charge], { callsFrom: bucket });
  server.add({ provider: "openai", model: "gpt-4-turbo", payer: charge.user, at: Number(bucket), tokens: 60_000n });
  await openDispute(s, [[batch, 0]]);
  expect(await s.router.totalDeposits()).to.equal(0n);
  expect(await s.router.balanceOf(charge.user)).to.equal(0n);
  return { ...s, batch, bucket };
}

/** Requests the verification and delivers the DON's answer (or `err`) with `gas` for the callback. */
async function resolveWith(s: Worst, gas: number, err?: string) {
  const disputeId = (await s.router.queryFilter(s.router.filters.DisputeOpened()))[0]!.args.disputeId;
  const sent = await sentRequest(s, await s.oracle.requestVerification(disputeId));
  const [response, error] = toFulfillment(err === undefined ? await runRequest(sent) : { error: err, httpRequests: 0, logs: [] });
  return s.functionsRouter.fulfillWithGas(sent.requestId, response, error, gas);
}

/** The least callback gas with which the answer is delivered (the mock router reverts when the callback fails). */
async function leastGas(err?: string): Promise<number> {
  let low = 10_000;
  let high = MAX_CALLBACK_GAS;
  await (await resolveWith(await loadFixture(worstFixture), high, err)).wait();
  while (high - low > 50) {
    const mid = Math.floor((low + high) / 2);
    let ok = true;
    try {
      await (await resolveWith(await loadFixture(worstFixture), mid, err)).wait();
    } catch {
      ok = false;
    }
    if (ok) high = mid;
    else low = mid;
  }
  return high;
}

describe("UsageOracle: callback gas (P5)", function () {
  before(async function () {
    await server.start();
  });
  after(async function () {
    await server.stop();
  });

  it("MIN_CALLBACK_GAS is the measured worst case plus 25 %, and a resolution runs at exactly that minimum", async function () {
    // Under --coverage the contracts are instrumented: their gas is not the deployed code's.
    if (hre.globalOptions.coverage) this.skip();
    const resolution = await leastGas();
    const failure = await leastGas("x".repeat(256));
    const worst = Math.max(resolution, failure);
    const min = Number(await (await loadFixture(worstFixture)).oracle.MIN_CALLBACK_GAS());
    console.log(`      measured callback gas: resolution ${resolution}, failure ${failure}; MIN_CALLBACK_GAS ${min}`);
    expect(min).to.be.at.least(Math.ceil(worst * 1.25));
    expect(min).to.be.at.most(Math.ceil((worst * 1.25) / 1000) * 1000 + 5000);

    // through the real path: the configured limit at exactly the minimum, the mock router passing it on
    const s = await loadFixture(worstFixture);
    await s.oracle.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, min);
    const disputeId = (await s.router.queryFilter(s.router.filters.DisputeOpened()))[0]!.args.disputeId;
    const sent = await sentRequest(s, await s.oracle.requestVerification(disputeId));
    expect(sent.callbackGasLimit).to.equal(BigInt(min));
    await expect(deliver(s, sent, await runRequest(sent))).to.emit(s.router, "DisputeResolved");
    await expect(s.oracle.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, min - 1))
      .to.be.revertedWithCustomError(s.oracle, "UsageOracleCallbackGasOutOfRange")
      .withArgs(min - 1, min, MAX_CALLBACK_GAS);
  });
});
