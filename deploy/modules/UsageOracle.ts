/**
 * Ignition module `UsageOracle`: the oracle adapter (contracts/oracle/UsageOracle.sol), AutoPayLLM's arbiter for
 * usage disputes. Its admin is the timelock from the start (nothing to renounce); the deployer grants it
 * `AutoPayLLM`'s ARBITER_ROLE before the hand-over. Included only when the parameters name the chain's Chainlink
 * Functions router. Its configuration (price feed, Functions subscription and DON, source, usage API) is then
 * governance's: proposals that call the oracle's setters.
 *
 * Parameters: `functionsRouter` (address, required).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { ARBITER_ROLE } from "../../relayer/chain/roles.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";
import { governanceModule } from "./Governance.js";

function build(settlement: AutoPayLLMModule) {
  return buildModule("UsageOracle", (m) => {
    const { autoPayLLM } = m.useModule(settlement);
    const { timelock } = m.useModule(governanceModule(settlement));
    const usageOracle = m.contract("UsageOracle", [autoPayLLM, m.getParameter<string>("functionsRouter"), timelock]);
    m.call(autoPayLLM, "grantRole", [ARBITER_ROLE, usageOracle], { id: "grantArbiter" });
    return { usageOracle };
  });
}

const cache = new WeakMap<AutoPayLLMModule, ReturnType<typeof build>>();

export function usageOracleModule(settlement: AutoPayLLMModule): ReturnType<typeof build> {
  let module = cache.get(settlement);
  if (module === undefined) {
    module = build(settlement);
    cache.set(settlement, module);
  }
  return module;
}
