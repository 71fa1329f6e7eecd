/**
 * Ignition module `GuardianRole`: grants `AutoPayLLM`'s PAUSER_ROLE (pause and unpause settlement and release; never
 * move funds) to a guardian, typically a multisig that can react faster than a vote. Included only when the
 * parameters name a guardian; otherwise governance grants it later.
 *
 * Parameters: `guardian` (address, required).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { PAUSER_ROLE } from "../../relayer/chain/roles.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";

function build(settlement: AutoPayLLMModule) {
  return buildModule("GuardianRole", (m) => {
    const { autoPayLLM } = m.useModule(settlement);
    m.call(autoPayLLM, "grantRole", [PAUSER_ROLE, m.getParameter<string>("guardian")], { id: "grantPauser" });
    return {};
  });
}

const cache = new WeakMap<AutoPayLLMModule, ReturnType<typeof build>>();

export function guardianRoleModule(settlement: AutoPayLLMModule): ReturnType<typeof build> {
  let module = cache.get(settlement);
  if (module === undefined) {
    module = build(settlement);
    cache.set(settlement, module);
  }
  return module;
}
