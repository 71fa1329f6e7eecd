/**
 * An ethers provider over the settler's `RpcPool`: typed contract calls and transactions with the same fail-over
 * across a chain's RPC URLs (a node's own error answer is returned as is; a transport failure moves to the next).
 */
import { JsonRpcApiProvider, Network, type JsonRpcError, type JsonRpcPayload, type JsonRpcResult } from "ethers";

import { JsonRpcError as NodeError } from "../settler/json-rpc.js";
import type { RpcPool } from "../settler/rpc-pool.js";

export class PooledProvider extends JsonRpcApiProvider {
  constructor(
    private readonly pool: RpcPool,
    chainId: number,
    pollingIntervalMs = 1000,
  ) {
    const network = Network.from(chainId);
    super(network, { staticNetwork: network, batchMaxCount: 1, pollingInterval: pollingIntervalMs, cacheTimeout: -1 });
  }

  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<(JsonRpcResult | JsonRpcError)[]> {
    const requests = Array.isArray(payload) ? payload : [payload];
    return Promise.all(
      requests.map(async (request): Promise<JsonRpcResult | JsonRpcError> => {
        try {
          return { id: request.id, result: await this.pool.request(request.method, request.params as unknown[]) };
        } catch (error) {
          if (!(error instanceof NodeError)) throw error;
          return { id: request.id, error: { code: error.code, message: error.message, data: error.data } };
        }
      }),
    );
  }
}
