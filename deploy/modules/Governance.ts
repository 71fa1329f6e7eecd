/**
 * Ignition module `Governance`: `AgentTimelock` (OpenZeppelin TimelockController) and `AgentGovernor`, wired so the
 * governor is the timelock's only proposer, canceller and executor. The deployer stays the timelock's admin until
 * the suite module renounces it, after every role of the suite is wired.
 *
 * Why the governor, not "anyone" (address(0)), is the executor: `AgentGovernor` re-checks after each execution that
 * the timelock delay still exceeds the dispute window; an open executor role would let operations run on the
 * timelock directly and skip that check. Liveness is the same: `AgentGovernor.execute` is callable by anyone.
 *
 * Parameters (clock: AGPT counts block numbers; on Arbitrum that is the L1 block number, about 12 s):
 * - `votingDelay` (blocks, default 7200: about 1 day of 12 s blocks): from proposal to snapshot and vote start.
 * - `votingPeriod` (blocks, default 50400: about 1 week of 12 s blocks).
 * - `proposalThreshold` (AGPT units, default 100,000 AGPT): votes needed to propose.
 * - `quorumPercent` (percent of supply, default 4): for + abstain votes needed.
 * - `timelockDelay` (seconds, default 172800: 2 days): must exceed `AutoPayLLM.disputeWindow` plus its
 *   `sequencerGracePeriod` (the governor's constructor checks it, and re-checks after every execution).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { CANCELLER_ROLE, EXECUTOR_ROLE, PROPOSER_ROLE } from "../../relayer/chain/roles.js";
import AGPTTokenModule from "./AGPTToken.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";

export const GOVERNANCE_DEFAULTS = {
  votingDelay: 7200,
  votingPeriod: 50_400,
  proposalThreshold: 100_000n * 10n ** 18n,
  quorumPercent: 4,
  timelockDelay: 172_800,
} as const;

function build(settlement: AutoPayLLMModule) {
  return buildModule("Governance", (m) => {
    const deployer = m.getAccount(0);
    const { agpt } = m.useModule(AGPTTokenModule);
    const { autoPayLLM } = m.useModule(settlement);

    const timelock = m.contract("AgentTimelock", [
      m.getParameter("timelockDelay", GOVERNANCE_DEFAULTS.timelockDelay),
      [],
      [],
      deployer,
    ]);
    // After the whole settlement module: the constructor checks the timelock delay against the configured window.
    const governor = m.contract(
      "AgentGovernor",
      [
        agpt,
        timelock,
        autoPayLLM,
        m.getParameter("votingDelay", GOVERNANCE_DEFAULTS.votingDelay),
        m.getParameter("votingPeriod", GOVERNANCE_DEFAULTS.votingPeriod),
        m.getParameter("proposalThreshold", GOVERNANCE_DEFAULTS.proposalThreshold),
        m.getParameter("quorumPercent", GOVERNANCE_DEFAULTS.quorumPercent),
      ],
      { after: [settlement] },
    );

    m.call(timelock, "grantRole", [PROPOSER_ROLE, governor], { id: "grantProposer" });
    m.call(timelock, "grantRole", [CANCELLER_ROLE, governor], { id: "grantCanceller" });
    m.call(timelock, "grantRole", [EXECUTOR_ROLE, governor], { id: "grantExecutor" });

    return { agpt, timelock, governor };
  });
}

const cache = new WeakMap<AutoPayLLMModule, ReturnType<typeof build>>();

export type GovernanceModule = ReturnType<typeof build>;

/** The governance module bound to a settlement module (one module object per settlement module). */
export function governanceModule(settlement: AutoPayLLMModule): GovernanceModule {
  let module = cache.get(settlement);
  if (module === undefined) {
    module = build(settlement);
    cache.set(settlement, module);
  }
  return module;
}
