/**
 * Ignition module `AgentGPT`: the whole suite. Token, settlement router (with its dispute settings), timelock and
 * governor; every role wired; the AGPT supply handed to its holders (AGPTAllocations); then the hand-over: the timelock receives `AutoPayLLM`'s DEFAULT_ADMIN_ROLE (every governance power) and the
 * deployer renounces its admin role on `AutoPayLLM` and on the timelock, last, after every other grant.
 *
 * The graph depends on a few choices the parameters make (see scripts/deploy.ts, which derives them): the payment
 * token source, and whether a relayer or a guardian is named. An optional role is one more module here: add it to
 * `wiring` so the renounce waits for it (the oracle adapter's ARBITER_ROLE is one). With the oracle, the deployer also
 * renounces its temporary admin role on `UsageOracle`.
 */
import type { IgnitionModule } from "@nomicfoundation/ignition-core";
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { DEFAULT_ADMIN_ROLE } from "../../relayer/chain/roles.js";
import { agptAllocationsModule, type AllocationTarget } from "./AGPTAllocations.js";
import { autoPayLLMModule, type PaymentTokenSource } from "./AutoPayLLM.js";
import { governanceModule } from "./Governance.js";
import { guardianRoleModule } from "./GuardianRole.js";
import { registryModule, registryKey, type RegistryEntries } from "./Registry.js";
import { relayerKeyRotatorModule } from "./RelayerKeyRotator.js";
import { relayerRoleModule } from "./RelayerRole.js";
import { usageOracleModule } from "./UsageOracle.js";

/** The shape of the suite's deployment graph. */
export interface SuiteOptions {
  /** `fresh`: settle in the AGPT deployed here; `existing`: in `AutoPayLLM.paymentToken` (votes stay in AGPT). */
  paymentToken: PaymentTokenSource;
  /** Grant RELAYER_ROLE to `RelayerRole.relayer` at deployment. */
  relayer: boolean;
  /** Deploy the RelayerKeyRotator (`RelayerKeyRotator.rotator` holds ROTATOR_ROLE) and grant it the router's admin
   * role before the hand-over; with `relayer`, the relayer key is adopted into its care. */
  rotator?: boolean;
  /** Grant PAUSER_ROLE to `GuardianRole.guardian` at deployment. */
  guardian: boolean;
  /** Deploy the oracle adapter on `UsageOracle.functionsRouter` and make it the arbiter. */
  oracle: boolean;
  /** Set `AutoPayLLM.sequencerUptimeFeed` (and its grace period) before the governor checks the timelock delay. */
  sequencerFeed?: boolean;
  /** The AGPT transfers from the deployer, in order (AGPTAllocations); none: the deployer keeps the supply. */
  allocations?: readonly AllocationTarget[];
  /** The providers and priced models registered before the hand-over (Registry); none: governance adds them. */
  registry?: RegistryEntries;
}

export type { AllocationTarget, RegistryEntries };

function build(options: SuiteOptions) {
  return buildModule("AgentGPT", (m) => {
    const deployer = m.getAccount(0);
    const settlement = autoPayLLMModule(options.paymentToken, options.sequencerFeed ?? false);
    const governance = governanceModule(settlement);
    const { autoPayLLM } = m.useModule(settlement);
    const { agpt, timelock, governor } = m.useModule(governance);

    const wiring: IgnitionModule[] = [settlement, governance];
    const optional: {
      usageOracle?: ReturnType<typeof usageOracleModule>["results"]["usageOracle"];
      relayerKeyRotator?: ReturnType<typeof relayerKeyRotatorModule>["results"]["relayerKeyRotator"];
    } = {};
    let relayerModule: ReturnType<typeof relayerRoleModule> | undefined;
    if (options.relayer) {
      relayerModule = relayerRoleModule(settlement);
      m.useModule(relayerModule);
      wiring.push(relayerModule);
    }
    const rotatorHandOver: ReturnType<typeof m.call>[] = [];
    if (options.rotator === true) {
      const module = relayerKeyRotatorModule(settlement, relayerModule);
      const { relayerKeyRotator } = m.useModule(module);
      optional.relayerKeyRotator = relayerKeyRotator;
      wiring.push(module);
      rotatorHandOver.push(m.call(relayerKeyRotator, "grantRole", [DEFAULT_ADMIN_ROLE, timelock], { id: "grantRotatorAdminToTimelock" }));
    }
    if (options.guardian) {
      const module = guardianRoleModule(settlement);
      m.useModule(module);
      wiring.push(module);
    }
    if (options.oracle) {
      const module = usageOracleModule(settlement);
      optional.usageOracle = m.useModule(module).usageOracle;
      wiring.push(module);
    }
    if ((options.allocations ?? []).length > 0) {
      const module = agptAllocationsModule(governance, options.allocations ?? []);
      m.useModule(module);
      wiring.push(module);
    }

    const registry = options.registry;
    if (registry !== undefined && (registry.providers.length > 0 || registry.models.length > 0)) {
      const module = registryModule(settlement, registry);
      m.useModule(module);
      wiring.push(module);
    }

    const adminToTimelock = m.call(autoPayLLM, "grantRole", [DEFAULT_ADMIN_ROLE, timelock], {
      id: "grantAdminToTimelock",
    });
    const handOver = { after: [adminToTimelock, ...rotatorHandOver, ...wiring] };
    if (optional.relayerKeyRotator !== undefined) {
      m.call(optional.relayerKeyRotator, "renounceRole", [DEFAULT_ADMIN_ROLE, deployer], { id: "renounceRotatorAdmin", ...handOver });
    }
    m.call(autoPayLLM, "renounceRole", [DEFAULT_ADMIN_ROLE, deployer], { id: "renounceSettlementAdmin", ...handOver });
    m.call(timelock, "renounceRole", [DEFAULT_ADMIN_ROLE, deployer], { id: "renounceTimelockAdmin", ...handOver });
    if (optional.usageOracle !== undefined) {
      m.call(optional.usageOracle, "renounceRole", [DEFAULT_ADMIN_ROLE, deployer], {
        id: "renounceOracleAdmin",
        ...handOver,
      });
    }

    return { agpt, autoPayLLM, timelock, governor, ...optional };
  });
}

const cache = new Map<string, ReturnType<typeof build>>();

export type AgentGPTModule = ReturnType<typeof build>;

/** The suite module for `options` (one module object per distinct options). */
export function agentGptModule(options: SuiteOptions): AgentGPTModule {
  const key = [
    options.paymentToken,
    options.relayer,
    options.rotator ?? false,
    options.guardian,
    options.oracle,
    options.sequencerFeed ?? false,
    (options.allocations ?? []).join(","),
    options.registry === undefined ? "" : registryKey(options.registry),
  ].join(":");
  let module = cache.get(key);
  if (module === undefined) {
    module = build(options);
    cache.set(key, module);
  }
  return module;
}
