/**
 * Provider and model ids as registered on the router (`providerId(name)`, `modelId(name)`), looked up over
 * JSON-RPC and cached. A name that is not registered (id 0) is asked again before each batch, so a provider or
 * model registered by governance later is picked up without a restart.
 */
import { Interface } from "ethers";

import type { Receipt } from "../queue/index.js";
import type { RpcPool } from "../settler/rpc-pool.js";
import type { Registry } from "./aggregate.js";

const REGISTRY_ABI = [
  "function providerId(string name) view returns (uint32)",
  "function modelId(string name) view returns (uint32)",
];

export class OnchainRegistry {
  private readonly contract = new Interface(REGISTRY_ABI);
  private readonly providers = new Map<string, number>();
  private readonly models = new Map<string, number>();

  constructor(
    private readonly rpc: RpcPool,
    private readonly router: string,
  ) {}

  /** Resolves every provider and model name of `receipts`; returns a synchronous view for aggregation. */
  async resolve(receipts: readonly Receipt[]): Promise<Registry> {
    const providers = new Set(receipts.map((r) => r.provider));
    const models = new Set(receipts.map((r) => r.model));
    await Promise.all([
      ...[...providers].filter((name) => !this.providers.get(name)).map((name) => this.lookup("providerId", name, this.providers)),
      ...[...models].filter((name) => !this.models.get(name)).map((name) => this.lookup("modelId", name, this.models)),
    ]);
    return {
      providerId: (name) => this.providers.get(name) ?? 0,
      modelId: (name) => this.models.get(name) ?? 0,
    };
  }

  private async lookup(fn: "providerId" | "modelId", name: string, cache: Map<string, number>): Promise<void> {
    const data = this.contract.encodeFunctionData(fn, [name]);
    const result = await this.rpc.request<string>("eth_call", [{ to: this.router, data }, "latest"]);
    cache.set(name, Number(this.contract.decodeFunctionResult(fn, result)[0]));
  }
}
