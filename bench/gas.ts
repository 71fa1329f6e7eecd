/**
 * Gas benchmark of batch settlement (`npm run bench:gas`). Not a test: it prints a table and writes
 * bench/results/gas.json.
 *
 * Reference workload (fixed seed): 1,000 receipts from 50 payers on 5 routes (5 providers serving 3 models),
 * aggregated into ~250 rows and settled as one batch after one warm-up batch (steady state: every accumulator
 * already non-zero). Every rule is enforced: price caps, model daily budgets, payer daily caps, auto-refill
 * thresholds. Baseline in the same run: the same 1,000 receipts settled one transaction each through the same
 * contract (the seed's charge-per-call model). A third figure settles the batch with every deposit empty, so
 * every payer is paid through allowance pulls.
 *
 * Every batch goes through `settleBatchAt` as the settler sends it: the call interval (`callsFrom`, the usage bucket
 * of the calls), a receipts root used once, and a real-length CID. Besides gas, the table reports the calldata of the
 * measured batch per receipt: all bytes, non-zero bytes, and the brotli-compressed size of the calldata (Arbitrum
 * prices its L1 data by the brotli-compressed transaction, which is the cost that dominates there).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zlib } from "node:zlib";

import { network } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";

import type { AGPTToken, AutoPayLLM } from "../typechain-types/index.js";
import { contentId } from "../relayer/batcher/content-id.js";
import type { Charge } from "../relayer/batcher/rows-tree.js";
import { aggregate, generateReceipts, type Route } from "./workload.js";

const SEED = 0x5eed;
const RECEIPTS = 1000;
const PAYERS = 50;
const AGPT = 10n ** 18n;

const { ethers, networkHelpers } = await network.create();

interface Suite {
  token: AGPTToken;
  router: AutoPayLLM;
  payers: string[];
  routes: Route[];
}

async function deploySuite(funding: "deposit" | "allowance"): Promise<Suite> {
  const [admin, relayer] = await ethers.getSigners();
  const token = await ethers.deployContract("AGPTToken", [admin!.address, 10n ** 12n * AGPT]);
  const router = await ethers.deployContract("AutoPayLLM", [await token.getAddress(), admin!.address]);
  await router.grantRole(await router.RELAYER_ROLE(), relayer!.address);

  const providerNames = ["openai", "azure", "anthropic", "groq", "together"];
  for (const name of providerNames) {
    await router.registerProvider(name, new ethers.Wallet(ethers.id(`bench-payee-${name}`)).address);
  }
  const models: [string, bigint][] = [
    ["gpt-4-turbo", (12n * AGPT) / 100n],
    ["claude-3", (9n * AGPT) / 100n],
    ["mixtral-8x22b", (85n * AGPT) / 10_000n],
  ];
  for (const [name, price] of models) {
    await router.setModelPrice(name, price);
    await router.setModelBudget(name, 1_000_000n * AGPT);
  }
  // 5 routes over 5 providers and 3 models.
  const routes: Route[] = [
    { provider: 1, model: 1, pricePer1k: models[0]![1] },
    { provider: 2, model: 1, pricePer1k: models[0]![1] },
    { provider: 3, model: 2, pricePer1k: models[1]![1] },
    { provider: 4, model: 3, pricePer1k: models[2]![1] },
    { provider: 5, model: 3, pricePer1k: models[2]![1] },
  ];

  const payers: string[] = [];
  const routerAddress = await router.getAddress();
  for (let i = 0; i < PAYERS; i++) {
    // Deterministic payers: the same addresses (hence the same calldata bytes) in every run.
    const wallet = new ethers.Wallet(ethers.id(`bench-payer-${SEED}-${i}`));
    payers.push(wallet.address);
    await networkHelpers.impersonateAccount(wallet.address);
    await networkHelpers.setBalance(wallet.address, 10n ** 18n);
    const payer = await ethers.getSigner(wallet.address);
    await token.transfer(wallet.address, 100_000n * AGPT);
    await router.connect(payer).setDailyCap(50_000n * AGPT);
    if (funding === "deposit") {
      await router.connect(payer).setAutoRefill(10n * AGPT, 100n * AGPT);
      await token.connect(payer).approve(routerAddress, 50_000n * AGPT);
      await router.connect(payer).deposit(50_000n * AGPT);
    } else {
      await token.connect(payer).approve(routerAddress, ethers.MaxUint256);
    }
  }
  return { token, router, payers, routes };
}

/** What a batch's calldata costs beyond execution: its bytes, the non-zero ones, and its brotli-compressed size. */
interface Calldata {
  bytes: number;
  nonZero: number;
  brotli: number;
}

function calldataOf(data: string): Calldata {
  const bytes = Buffer.from(data.slice(2), "hex");
  const brotli = brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }).length;
  return { bytes: bytes.length, nonZero: bytes.filter((b) => b !== 0).length, brotli };
}

async function settle(router: AutoPayLLM, relayer: HardhatEthersSigner, label: string, charges: Charge[]) {
  const batchId = ethers.id(label);
  const latest = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
  const bucket = await router.usageBucket();
  const callsFrom = latest - (latest % bucket); // the calls' usage bucket, as the batcher cuts it
  const cid = await contentId(new TextEncoder().encode(label)); // a real CIDv1 (59 characters), as the settler sends
  const tx = await router.connect(relayer).settleBatchAt(batchId, charges, ethers.id(`${label}/receipts`), cid, callsFrom);
  const receipt = (await tx.wait())!;
  const rejected = receipt.logs.filter((log) => router.interface.parseLog(log)?.name === "RowRejected").length;
  if (rejected !== 0) throw new Error(`${label}: ${rejected} rows rejected; the workload must settle in full`);
  return { gas: receipt.gasUsed, calldata: calldataOf(tx.data) };
}

async function measureBatched(funding: "deposit" | "allowance") {
  const suite = await deploySuite(funding);
  const [, relayer] = await ethers.getSigners();
  const warmup = aggregate(generateReceipts(SEED + 1, RECEIPTS, suite.payers, suite.routes.length), suite.routes);
  await settle(suite.router, relayer!, `${funding}/warmup`, warmup);
  const receipts = generateReceipts(SEED, RECEIPTS, suite.payers, suite.routes.length);
  const rows = aggregate(receipts, suite.routes);
  const { gas, calldata } = await settle(suite.router, relayer!, `${funding}/measured`, rows);
  return { suite, receipts, rows, gas, calldata };
}

const batched = await measureBatched("deposit");
const emptyDeposits = await measureBatched("allowance");

// Baseline: the same receipts, one transaction each (a one-row batch per call), on a fresh suite.
const perCall = await deploySuite("deposit");
{
  const [, relayer] = await ethers.getSigners();
  const warm = aggregate(generateReceipts(SEED + 1, RECEIPTS, perCall.payers, perCall.routes.length), perCall.routes);
  await settle(perCall.router, relayer!, "per-call/warmup", warm);
}
let perCallGas = 0n;
let perCallBytes = 0;
{
  const [, relayer] = await ethers.getSigners();
  const receipts = generateReceipts(SEED, RECEIPTS, perCall.payers, perCall.routes.length);
  for (const [i, receipt] of receipts.entries()) {
    const one = await settle(perCall.router, relayer!, `per-call/${i}`, aggregate([receipt], perCall.routes));
    perCallGas += one.gas;
    perCallBytes += one.calldata.bytes;
  }
}

const receipts = batched.receipts.length;
const rows = batched.rows.length;
const gasPerReceipt = Number(batched.gas) / receipts;
const perCallGasPerReceipt = Number(perCallGas) / receipts;
const results = {
  workload: { seed: SEED, receipts, payers: PAYERS, routes: 5, providers: 5, models: 3 },
  receipts,
  rows,
  batchGas: Number(batched.gas),
  gasPerReceipt: Math.round(gasPerReceipt),
  gasPerRow: Math.round(Number(batched.gas) / rows),
  perCallGasPerReceipt: Math.round(perCallGasPerReceipt),
  calldata: {
    bytes: batched.calldata.bytes,
    nonZeroBytes: batched.calldata.nonZero,
    brotliBytes: batched.calldata.brotli,
    bytesPerReceipt: Number((batched.calldata.bytes / receipts).toFixed(1)),
    nonZeroBytesPerReceipt: Number((batched.calldata.nonZero / receipts).toFixed(1)),
    brotliBytesPerReceipt: Number((batched.calldata.brotli / receipts).toFixed(1)),
    bytesPerRow: Math.round(batched.calldata.bytes / rows),
    perCallBytesPerReceipt: Math.round(perCallBytes / receipts),
  },
  ratio: Number((perCallGasPerReceipt / gasPerReceipt).toFixed(1)),
  emptyDeposits: {
    rows: emptyDeposits.rows.length,
    batchGas: Number(emptyDeposits.gas),
    gasPerReceipt: Math.round(Number(emptyDeposits.gas) / emptyDeposits.receipts.length),
    gasPerRow: Math.round(Number(emptyDeposits.gas) / emptyDeposits.rows.length),
  },
  target: { gasPerReceipt: 1500, ratio: 100 },
  measuredAt: new Date().toISOString(),
};

const fmt = (n: number) => n.toLocaleString("en-US");
console.log("\nSettlement gas, reference workload (steady state, every rule enforced)\n");
console.table({
  "batched (deposits)": {
    receipts,
    rows,
    "batch gas": fmt(results.batchGas),
    "gas/receipt": fmt(results.gasPerReceipt),
    "gas/row": fmt(results.gasPerRow),
    "calldata B/receipt": results.calldata.bytesPerReceipt,
    "brotli B/receipt": results.calldata.brotliBytesPerReceipt,
  },
  "batched (empty deposits, allowance pulls)": {
    receipts,
    rows: results.emptyDeposits.rows,
    "batch gas": fmt(results.emptyDeposits.batchGas),
    "gas/receipt": fmt(results.emptyDeposits.gasPerReceipt),
    "gas/row": fmt(results.emptyDeposits.gasPerRow),
  },
  "one tx per receipt (baseline)": {
    receipts,
    rows: receipts,
    "batch gas": fmt(Number(perCallGas)),
    "gas/receipt": fmt(results.perCallGasPerReceipt),
    "gas/row": fmt(results.perCallGasPerReceipt),
    "calldata B/receipt": results.calldata.perCallBytesPerReceipt,
  },
});
console.log(
  `calldata of the measured batch: ${fmt(results.calldata.bytes)} bytes (${fmt(results.calldata.nonZeroBytes)} non-zero, ` +
    `${fmt(results.calldata.brotliBytes)} brotli-compressed): ${results.calldata.bytesPerReceipt} B/receipt, ` +
    `${results.calldata.nonZeroBytesPerReceipt} non-zero B/receipt, ${results.calldata.brotliBytesPerReceipt} compressed B/receipt, ${results.calldata.bytesPerRow} B/row`,
);
console.log(`ratio (per-call / batched): ${results.ratio}x   target: <= 1,500 gas/receipt, ratio >= 100`);
const ok = results.gasPerReceipt <= 1500 && results.ratio >= 100;
console.log(ok ? "targets met" : "TARGETS NOT MET");

const out = join(dirname(fileURLToPath(import.meta.url)), "results", "gas.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`written ${out}`);
