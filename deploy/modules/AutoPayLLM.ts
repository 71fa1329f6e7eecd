/**
 * Ignition module `AutoPayLLM`: the settlement router, deployed with the deployer as its temporary admin so the
 * suite module can configure and wire it; the suite module hands every admin power to the timelock and renounces.
 *
 * Parameters:
 * - `paymentToken` (address; only in the `existing` variant): settle in this ERC-20 instead of the fresh AGPT.
 * - `disputeWindow` (seconds, 60 to 30 days; default 3600): must stay shorter than `Governance.timelockDelay`.
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import AGPTTokenModule from "./AGPTToken.js";

/** Where the payment token comes from: the fresh AGPT of this deployment, or an existing ERC-20 (a parameter). */
export type PaymentTokenSource = "fresh" | "existing";

/** `AutoPayLLM.DEFAULT_DISPUTE_WINDOW`. */
export const DEFAULT_DISPUTE_WINDOW = 3600;

function build(source: PaymentTokenSource) {
  return buildModule("AutoPayLLM", (m) => {
    const deployer = m.getAccount(0);
    const token =
      source === "fresh" ? m.useModule(AGPTTokenModule).agpt : m.getParameter<string>("paymentToken");
    const autoPayLLM = m.contract("AutoPayLLM", [token, deployer]);
    m.call(autoPayLLM, "setDisputeWindow", [m.getParameter("disputeWindow", DEFAULT_DISPUTE_WINDOW)]);
    return { autoPayLLM };
  });
}

const modules = { fresh: build("fresh"), existing: build("existing") };

export type AutoPayLLMModule = (typeof modules)["fresh"];

/** The module for a payment-token source (one module object per source, so every user shares it). */
export function autoPayLLMModule(source: PaymentTokenSource): AutoPayLLMModule {
  return modules[source];
}
