/**
 * Ignition module `AutoPayLLM`: the settlement router, deployed with the deployer as its temporary admin so the
 * suite module can configure and wire it; the suite module hands every admin power to the timelock and renounces.
 * Every dispute setting is applied here, before the governor is deployed (its constructor checks the timelock delay
 * against the window plus the sequencer grace period) and before the hand-over.
 *
 * Parameters:
 * - `paymentToken` (address; only in the `existing` variant): settle in this ERC-20 instead of the fresh AGPT.
 * - `disputeWindow` (seconds, 60 to 30 days; default 3600): with the grace period, shorter than the timelock delay.
 * - `usageBucket` (seconds, 60 to 1 day, a divisor of a day; default 3600): the call-time interval batches commit
 *   and disputes compare; match the provider usage reports' granularity. Fixed once a batch settled.
 * - `disputeBond` (payment-token units; default 1 AGPT in the `fresh` variant, required in `existing`): the fixed
 *   part of a dispute's bond.
 * - `arbiterTimeout`, `governanceTimeout` (seconds, 1 hour to 90 days; defaults 3 and 14 days): how long the oracle,
 *   then governance, may resolve a dispute (fixed per dispute when it opens).
 * - `sequencerUptimeFeed` (address) and `sequencerGracePeriod` (seconds, at most 7 days): only in the variant with
 *   a sequencer feed (L2s with a Chainlink L2 sequencer-uptime feed).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import AGPTTokenModule from "./AGPTToken.js";

/** Where the payment token comes from: the fresh AGPT of this deployment, or an existing ERC-20 (a parameter). */
export type PaymentTokenSource = "fresh" | "existing";

/** `AutoPayLLM.DEFAULT_DISPUTE_WINDOW`. */
export const DEFAULT_DISPUTE_WINDOW = 3600;

/** The contract's own defaults (AutoPayLLM.sol): the bucket, the fixed bond of the fresh AGPT, the timeouts. */
export const DISPUTE_DEFAULTS = {
  usageBucket: 3600,
  disputeBond: 10n ** 18n,
  arbiterTimeout: 3 * 86_400,
  governanceTimeout: 14 * 86_400,
} as const;

function build(source: PaymentTokenSource, sequencerFeed: boolean) {
  return buildModule("AutoPayLLM", (m) => {
    const deployer = m.getAccount(0);
    const token =
      source === "fresh" ? m.useModule(AGPTTokenModule).agpt : m.getParameter<string>("paymentToken");
    const autoPayLLM = m.contract("AutoPayLLM", [token, deployer]);
    m.call(autoPayLLM, "setDisputeWindow", [m.getParameter("disputeWindow", DEFAULT_DISPUTE_WINDOW)]);
    m.call(autoPayLLM, "setUsageBucket", [m.getParameter("usageBucket", DISPUTE_DEFAULTS.usageBucket)]);
    m.call(autoPayLLM, "setDisputeBond", [
      source === "fresh"
        ? m.getParameter("disputeBond", DISPUTE_DEFAULTS.disputeBond)
        : m.getParameter<bigint>("disputeBond"),
    ]);
    m.call(autoPayLLM, "setDisputeTimeouts", [
      m.getParameter("arbiterTimeout", DISPUTE_DEFAULTS.arbiterTimeout),
      m.getParameter("governanceTimeout", DISPUTE_DEFAULTS.governanceTimeout),
    ]);
    if (sequencerFeed) {
      m.call(autoPayLLM, "setSequencerUptimeFeed", [
        m.getParameter<string>("sequencerUptimeFeed"),
        m.getParameter("sequencerGracePeriod", 0),
      ]);
    }
    return { autoPayLLM };
  });
}

const modules = {
  fresh: build("fresh", false),
  existing: build("existing", false),
  freshWithFeed: build("fresh", true),
  existingWithFeed: build("existing", true),
};

export type AutoPayLLMModule = (typeof modules)["fresh"];

/**
 * The module for a payment-token source, with or without a sequencer feed (one module object per variant, so every
 * user shares it).
 */
export function autoPayLLMModule(source: PaymentTokenSource, sequencerFeed = false): AutoPayLLMModule {
  return modules[`${source}${sequencerFeed ? "WithFeed" : ""}`];
}
