/**
 * Ignition module `RelayerKeyRotator`: the narrow rotation power (contracts/governance/RelayerKeyRotator.sol). The
 * rotator is deployed with the deployer as its temporary admin and granted `AutoPayLLM`'s DEFAULT_ADMIN_ROLE while
 * the deployer is still the router's admin (the only way, with AccessControl and no room in AutoPayLLM, to let it
 * grant and revoke RELAYER_ROLE; its code calls nothing else). The suite module then adopts the relayer granted at
 * deployment into its care and hands the rotator's admin role to the timelock with every other hand-over, so after
 * the deploy only governance changes its limits or takes the power back
 * (`agentgpt governance propose relayer-rotator --revoke`).
 *
 * Parameters: `rotator` (the ROTATOR key's address, required), `maxKeys` (default 2), `minInterval` (seconds,
 * default 3600), and, when the suite grants a relayer at deployment, `adopt` (that relayer's address: the
 * parameters builder sets it equal to `RelayerRole.relayer`), adopted after the RelayerRole grant.
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import { DEFAULT_ADMIN_ROLE } from "../../relayer/chain/roles.js";
import type { AutoPayLLMModule } from "./AutoPayLLM.js";
import type { relayerRoleModule } from "./RelayerRole.js";

type RelayerRoleModule = ReturnType<typeof relayerRoleModule>;

function build(settlement: AutoPayLLMModule, relayer: RelayerRoleModule | undefined) {
  return buildModule("RelayerKeyRotator", (m) => {
    const deployer = m.getAccount(0);
    const { autoPayLLM } = m.useModule(settlement);
    const relayerKeyRotator = m.contract("RelayerKeyRotator", [
      autoPayLLM,
      deployer,
      m.getParameter<string>("rotator"),
      m.getParameter<number>("maxKeys", 2),
      m.getParameter<number>("minInterval", 3600),
    ]);
    m.call(autoPayLLM, "grantRole", [DEFAULT_ADMIN_ROLE, relayerKeyRotator], { id: "grantRotationPower" });
    if (relayer !== undefined) {
      m.useModule(relayer);
      m.call(relayerKeyRotator, "adoptKey", [m.getParameter<string>("adopt")], { id: "adoptRelayer", after: [relayer] });
    }
    return { relayerKeyRotator };
  });
}

const cache = new WeakMap<AutoPayLLMModule, Map<RelayerRoleModule | undefined, ReturnType<typeof build>>>();

export type RelayerKeyRotatorModule = ReturnType<typeof build>;

/** The rotator module bound to a settlement module and, when a relayer is granted at deployment, its module. */
export function relayerKeyRotatorModule(settlement: AutoPayLLMModule, relayer?: RelayerRoleModule): RelayerKeyRotatorModule {
  let byRelayer = cache.get(settlement);
  if (byRelayer === undefined) {
    byRelayer = new Map();
    cache.set(settlement, byRelayer);
  }
  let module = byRelayer.get(relayer);
  if (module === undefined) {
    module = build(settlement, relayer);
    byRelayer.set(relayer, module);
  }
  return module;
}
