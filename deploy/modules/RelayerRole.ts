/**
 * Ignition module `RelayerRole`: grants `AutoPayLLM`'s RELAYER_ROLE (submit batches, nothing else) to the relayer's
 * signer while the deployer is still admin. Included only when the parameters name a relayer; otherwise governance
 * grants it later (`agentgpt governance propose-role --grant RELAYER --account 0x...`).
 *
 * Parameters: `relayer` (address, required).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { RELAYER_ROLE } from "../../relayer/chain/roles.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";

function build(settlement: AutoPayLLMModule) {
  return buildModule("RelayerRole", (m) => {
    const { autoPayLLM } = m.useModule(settlement);
    m.call(autoPayLLM, "grantRole", [RELAYER_ROLE, m.getParameter<string>("relayer")], { id: "grantRelayer" });
    return {};
  });
}

const cache = new WeakMap<AutoPayLLMModule, ReturnType<typeof build>>();

export function relayerRoleModule(settlement: AutoPayLLMModule): ReturnType<typeof build> {
  let module = cache.get(settlement);
  if (module === undefined) {
    module = build(settlement);
    cache.set(settlement, module);
  }
  return module;
}
