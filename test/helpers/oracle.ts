/**
 * Oracle fixture: the suite of test/helpers/suite.ts plus a UsageOracle wired to a MockFunctionsRouter, holding the
 * router's ARBITER_ROLE, configured with the repository's Functions source and a test usage API; and the loop a
 * DON would run: read the recorded request, run its source in Node against the usage server, deliver the answer.
 */
import { readFileSync } from "node:fs";

import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type { ContractTransactionResponse } from "ethers";

import { simulateRequest, toFulfillment, type RunResult, type FunctionsRequestData } from "../../oracle/functions/simulator.js";
import type { ChainlinkMockV3Aggregator, MockFunctionsRouter, UsageOracle } from "../../typechain-types/index.js";
import { deploySuite, nextDisputeId, rowRefs, type Settlement, type Suite } from "./suite.js";

export const SOURCE_PATH = new URL("../../oracle/functions/provider-usage.js", import.meta.url);
export const SOURCE = readFileSync(SOURCE_PATH, "utf8");
export const USAGE_API_KEY = "test-usage-key-0123456789";
export const SUBSCRIPTION_ID = 42n;
export const DON_ID = "0x" + Buffer.from("fun-arbitrum-sepolia-1").toString("hex").padEnd(64, "0");
export const CALLBACK_GAS = 300_000;
export const SECRETS_SLOT = 0;
export const SECRETS_VERSION = 1_700_000_000n;
/** 2.5 USD per AGPT, 8 decimals like Chainlink's USD feeds. */
export const PRICE = 250_000_000n;
export const HEARTBEAT = 3600;

export interface OracleSuite extends Suite {
  oracle: UsageOracle;
  functionsRouter: MockFunctionsRouter;
  priceFeed: ChainlinkMockV3Aggregator;
  /** anyone: verification needs no role */
  keeper: HardhatEthersSigner;
}

/**
 * @param options.verifier make the oracle the router's verifier, so opening a dispute sends its request (default
 * true, as the deploy does)
 */
export async function deployOracleSuite(
  ethers: HardhatEthers,
  usageApiUrl: string,
  options: { verifier?: boolean } = {},
): Promise<OracleSuite> {
  const suite = await deploySuite(ethers);
  const keeper = (await ethers.getSigners())[11]!;
  const functionsRouter = await ethers.deployContract("MockFunctionsRouter");
  const oracle = await ethers.deployContract("UsageOracle", [
    suite.routerAddress,
    await functionsRouter.getAddress(),
    suite.admin.address,
  ]);
  await suite.router.grantRole(await suite.router.ARBITER_ROLE(), await oracle.getAddress());
  if (options.verifier ?? true) await suite.router.setVerifier(await oracle.getAddress());
  await oracle.setSource(SOURCE);
  await oracle.setUsageApi(usageApiUrl);
  await oracle.setFunctionsConfig(SUBSCRIPTION_ID, DON_ID, CALLBACK_GAS);
  await oracle.setSecretsReference(SECRETS_SLOT, SECRETS_VERSION);
  const priceFeed = await ethers.deployContract("ChainlinkMockV3Aggregator", [8, PRICE]);
  await oracle.setPriceFeed(await priceFeed.getAddress(), HEARTBEAT, 1_000_000n, 1_000_000_000_000n);
  return { ...suite, oracle, functionsRouter, priceFeed, keeper };
}

export interface SentRequest {
  requestId: string;
  data: string;
  callbackGasLimit: bigint;
  subscriptionId: bigint;
  donId: string;
}

/** The request the mock router recorded in `tx`. */
export async function sentRequest(s: OracleSuite, tx: ContractTransactionResponse): Promise<SentRequest> {
  const receipt = (await tx.wait())!;
  for (const log of receipt.logs) {
    const parsed = s.functionsRouter.interface.parseLog(log);
    if (parsed?.name === "RequestRecorded") {
      return {
        requestId: parsed.args.requestId as string,
        data: parsed.args.data as string,
        callbackGasLimit: parsed.args.callbackGasLimit as bigint,
        subscriptionId: parsed.args.subscriptionId as bigint,
        donId: parsed.args.donId as string,
      };
    }
  }
  throw new Error("no Functions request recorded");
}

/** Runs the request's source in Node as the DON would (secrets: the usage API key). */
export async function runRequest(
  request: SentRequest,
  secrets: Record<string, string> = { usageApiKey: USAGE_API_KEY },
): Promise<RunResult & { request: FunctionsRequestData }> {
  return simulateRequest(request.data, { secrets });
}

/** Delivers a run's answer through the mock router. */
export function deliver(s: OracleSuite, request: SentRequest, result: RunResult) {
  const [response, err] = toFulfillment(result);
  return s.functionsRouter.fulfill(request.requestId, response, err);
}

/**
 * Opens a dispute naming `rows` (each `[batch, index]`) as their payer; resolves to the dispute id and the
 * transaction. Without a verifier set on the router, nothing else happens.
 */
export async function openDispute(s: Suite, rows: Array<[Settlement, number]>) {
  const refs = rowRefs(rows);
  const first = refs[0]!.charge;
  const payer = s.payers.find((p) => p.address === first.user)!;
  const callsFrom = rows[0]![0].callsFrom;
  const disputeId = await nextDisputeId(s, first.user, first.provider, first.model, callsFrom);
  const tx = await s.router.connect(payer).dispute(refs);
  return { disputeId, tx };
}
