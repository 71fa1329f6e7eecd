/**
 * A stand-in for the Chainlink DON on the demo chain: every request the MockFunctionsRouter records is run in Node
 * (oracle/functions/simulator.ts: the repository's Functions source, its HTTP call to the usage API, the DON's
 * limits) with the usage API key as the DON-hosted secret, and the answer is delivered through the mock router,
 * which calls the UsageOracle back exactly as the real router would.
 */
import type { JsonRpcApiProvider, Signer } from "ethers";

import { simulateRequest, toFulfillment } from "../../oracle/functions/simulator.js";
import type { MockFunctionsRouter } from "../../typechain-types/index.js";

export interface DonAnswer {
  readonly requestId: string;
  readonly error?: string | undefined;
  /** the response bytes delivered (hex), when the source returned a result */
  readonly response?: string | undefined;
  readonly txHash: string;
}

export class LocalDon {
  private readonly router: MockFunctionsRouter;
  private next = 0;

  constructor(
    functionsRouter: MockFunctionsRouter,
    signer: Signer,
    private readonly secrets: Record<string, string>,
  ) {
    this.router = functionsRouter.connect(signer);
  }

  /** Answers every request recorded since the last call. */
  async answerPending(): Promise<DonAnswer[]> {
    const provider = this.router.runner?.provider as JsonRpcApiProvider | null | undefined;
    if (provider === null || provider === undefined || typeof provider.send !== "function") throw new Error("the DON's signer has no JSON-RPC provider");
    // The head straight from the node: ethers may answer getBlockNumber() from a cache that predates the request
    // just sent (as test/helpers/dispute-chain.ts found)
    const head = Number(await provider.send("eth_blockNumber", []));
    if (head < this.next) return [];
    const logs = await this.router.queryFilter(this.router.filters.RequestRecorded(), this.next, head);
    this.next = head + 1;
    const answers: DonAnswer[] = [];
    for (const log of logs) {
      const result = await simulateRequest(log.args.data, { secrets: this.secrets });
      const [response, err] = toFulfillment(result);
      const receipt = await (await this.router.fulfill(log.args.requestId, response, err)).wait();
      answers.push({ requestId: log.args.requestId, error: result.error, response: result.response === undefined ? undefined : response, txHash: receipt?.hash ?? "" });
    }
    return answers;
  }
}
