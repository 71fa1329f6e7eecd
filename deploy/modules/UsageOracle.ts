/**
 * Ignition module `UsageOracle`: the oracle adapter (contracts/oracle/UsageOracle.sol), AutoPayLLM's arbiter and
 * dispute verifier. Deployed with the deployer as its temporary admin, which sets the verification parameters, makes
 * the timelock its admin, grants it `AutoPayLLM`'s ARBITER_ROLE and makes it `AutoPayLLM`'s verifier (so opening a
 * dispute starts its verification); the suite module then renounces the deployer's admin role with the others.
 * Included only when the parameters name the chain's Chainlink Functions router. The rest of its configuration
 * (price feed, Functions subscription and DON, source, usage API, secrets) is governance's: proposals that call the
 * oracle's setters.
 *
 * Parameters:
 * - `functionsRouter` (address, required).
 * - `requestTimeout` (seconds, 5 min to 1 day; default 900): a request unanswered this long may be retried.
 * - `maxAttempts` (1 to 10; default 3): Functions requests per dispute, each paid from the operator's subscription.
 * - `toleranceBps` (0 to 1000; default 0): an excess of at most this share of the billed tokens is no overcharge.
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { ARBITER_ROLE, DEFAULT_ADMIN_ROLE } from "../../relayer/chain/roles.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";
import { governanceModule } from "./Governance.js";

/** UsageOracle's own defaults (requestTimeout, maxAttempts, toleranceBps). */
export const VERIFICATION_DEFAULTS = { requestTimeout: 900, maxAttempts: 3, toleranceBps: 0 } as const;

function build(settlement: AutoPayLLMModule) {
  return buildModule("UsageOracle", (m) => {
    const deployer = m.getAccount(0);
    const { autoPayLLM } = m.useModule(settlement);
    const { timelock } = m.useModule(governanceModule(settlement));
    const usageOracle = m.contract("UsageOracle", [autoPayLLM, m.getParameter<string>("functionsRouter"), deployer]);
    m.call(usageOracle, "setVerificationParams", [
      m.getParameter("requestTimeout", VERIFICATION_DEFAULTS.requestTimeout),
      m.getParameter("maxAttempts", VERIFICATION_DEFAULTS.maxAttempts),
      m.getParameter("toleranceBps", VERIFICATION_DEFAULTS.toleranceBps),
    ]);
    m.call(usageOracle, "grantRole", [DEFAULT_ADMIN_ROLE, timelock], { id: "grantOracleAdminToTimelock" });
    m.call(autoPayLLM, "grantRole", [ARBITER_ROLE, usageOracle], { id: "grantArbiter" });
    m.call(autoPayLLM, "setVerifier", [usageOracle]);
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
