/**
 * Ignition module `Registry`: the providers and priced models a network starts with (`AutoPayLLM.providers` and
 * `AutoPayLLM.models` in deploy/parameters/<network>.json5), registered while the deployer is still AutoPayLLM's
 * admin, so rows are billable as soon as the deploy ends. The suite module renounces the deployer's admin role only
 * after this module (it is part of its `wiring`); every later change is governance's (`agentgpt governance propose`).
 *
 * The values are part of the graph, not parameters: each provider and model is one future named after it
 * (`Registry#provider_openai`, `Registry#price_gpt_4_turbo`, `Registry#budget_gpt_4_turbo`), so Ignition's journal
 * makes a re-run send nothing twice, and a changed value is a reconciliation error (governance's job by then).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import type { AutoPayLLMModule } from "./AutoPayLLM.js";

export interface RegistryProvider {
  /** LiteLLM's provider name (the part before "@" in a route: "openai@az-westus" -> "openai"). */
  readonly name: string;
  /** The account that withdraws the provider's credits. */
  readonly payee: string;
}

export interface RegistryModel {
  /** The model name as LiteLLM reports it. */
  readonly name: string;
  /** Price cap, payment-token units per 1,000 tokens (positive: a model is billable only with a cap). */
  readonly maxPricePer1k: bigint;
  /** Daily budget of all payers together, payment-token units per UTC day; 0: none (no call is sent). */
  readonly dailyBudget: bigint;
}

export interface RegistryEntries {
  readonly providers: readonly RegistryProvider[];
  readonly models: readonly RegistryModel[];
}

/**
 * The future ids of the entries, one per call, stable under reordering and unique: the name with every character
 * outside [A-Za-z0-9] as "_", and the entry's position appended when two names would collide.
 */
export function registryFutureIds(entries: RegistryEntries): {
  providers: string[];
  prices: string[];
  budgets: string[];
} {
  const ids = (prefix: string, names: readonly string[]) => {
    const base = names.map((name) => `${prefix}_${name.replace(/[^A-Za-z0-9]/g, "_")}`);
    return base.map((id, i) => (base.indexOf(id) !== i || base.lastIndexOf(id) !== i ? `${id}_${i}` : id));
  };
  const models = entries.models.map((m) => m.name);
  return {
    providers: ids("provider", entries.providers.map((p) => p.name)),
    prices: ids("price", models),
    budgets: ids("budget", models),
  };
}

function build(settlement: AutoPayLLMModule, entries: RegistryEntries) {
  return buildModule("Registry", (m) => {
    const { autoPayLLM } = m.useModule(settlement);
    const ids = registryFutureIds(entries);
    // One after the other, in the file's order: ids are handed out in registration order (openai first: id 1).
    let previous: ReturnType<typeof m.call> | undefined;
    const after = () => (previous === undefined ? [] : [previous]);
    entries.providers.forEach((provider, i) => {
      previous = m.call(autoPayLLM, "registerProvider", [provider.name, provider.payee], { id: ids.providers[i]!, after: after() });
    });
    entries.models.forEach((model, i) => {
      previous = m.call(autoPayLLM, "setModelPrice", [model.name, model.maxPricePer1k], { id: ids.prices[i]!, after: after() });
      if (model.dailyBudget > 0n) {
        previous = m.call(autoPayLLM, "setModelBudget", [model.name, model.dailyBudget], { id: ids.budgets[i]!, after: after() });
      }
    });
    return { autoPayLLM };
  });
}

const cache = new WeakMap<AutoPayLLMModule, Map<string, ReturnType<typeof build>>>();

/** A stable key of the entries (bigints as decimal text). */
export function registryKey(entries: RegistryEntries): string {
  return JSON.stringify(entries, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
}

/** The registry module bound to a settlement module and its entries (one module object per distinct pair). */
export function registryModule(settlement: AutoPayLLMModule, entries: RegistryEntries): ReturnType<typeof build> {
  let byEntries = cache.get(settlement);
  if (byEntries === undefined) {
    byEntries = new Map();
    cache.set(settlement, byEntries);
  }
  const key = registryKey(entries);
  let module = byEntries.get(key);
  if (module === undefined) {
    module = build(settlement, entries);
    byEntries.set(key, module);
  }
  return module;
}
