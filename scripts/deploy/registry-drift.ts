/**
 * The providers and models a deploy run may still register. Before the hand-over the deployer registers all those the
 * parameters list (Ignition's journal sends each once). After it, the deployer has no power left: every listed entry
 * must already be live with the listed values (a difference is refused with the governance command that makes it),
 * and only the entries the journal already recorded stay in the graph, so a re-run sends nothing.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Provider } from "ethers";

import type { RegistryEntries, RegistryProvider } from "../../deploy/modules/Registry.js";
import { DEFAULT_ADMIN_ROLE, FUTURE_IDS } from "../../relayer/chain/index.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { ParameterError } from "./parameters.js";

export interface RegistryRun {
  provider: Provider;
  deploymentDir: string;
  deploymentsDir: string;
  chainId: number;
  networkName: string;
  deployer: string;
  registry: RegistryEntries;
  /** The parameters file, for messages. */
  source: string;
}

/** What may stay in the graph for this run (see the file comment). */
export async function registryForRun(run: RegistryRun): Promise<RegistryEntries> {
  const addressesFile = join(run.deploymentDir, "deployed_addresses.json");
  if (!existsSync(addressesFile)) return run.registry;
  const recorded = JSON.parse(await readFile(addressesFile, "utf8")) as Record<string, string>;
  const settlement = recorded[FUTURE_IDS.autoPayLLM];
  if (settlement === undefined || (await run.provider.getCode(settlement)) === "0x") return run.registry;
  const autoPayLLM = AutoPayLLM__factory.connect(settlement, run.provider);
  if (await autoPayLLM.hasRole(DEFAULT_ADMIN_ROLE, run.deployer)) return run.registry;

  const network = run.networkName === "localhost" ? "" : ` --network ${run.networkName}`;
  const problems: string[] = [];
  for (const [i, entry] of run.registry.providers.entries()) {
    const id = await autoPayLLM.providerId(entry.name);
    if (id === 0n) {
      problems.push(
        `AutoPayLLM.providers[${i}] "${entry.name}" is not registered: propose it with \`agentgpt governance ` +
          `propose provider-register --name ${entry.name} --payee ${entry.payee}${network}\`, or remove the entry`,
      );
      continue;
    }
    const [, payee] = await autoPayLLM.providerInfo(id);
    if (payee.toLowerCase() !== entry.payee.toLowerCase()) {
      problems.push(
        `AutoPayLLM.providers[${i}].payee: "${entry.name}" is paid to ${payee} on chain: propose the change with ` +
          `\`agentgpt governance propose provider-payee --provider ${entry.name} --payee ${entry.payee}${network}\`, ` +
          "or write the live payee in the file",
      );
    }
  }
  for (const [i, entry] of run.registry.models.entries()) {
    const id = await autoPayLLM.modelId(entry.name);
    const [, price, budget] = id === 0n ? ["", 0n, 0n] : await autoPayLLM.modelInfo(id);
    if (price !== entry.maxPricePer1k) {
      problems.push(
        `AutoPayLLM.models[${i}].maxPrice: "${entry.name}" has price cap ${price} token units on chain, the file ` +
          `${entry.maxPricePer1k}: propose it with \`agentgpt governance propose model-price --model ${entry.name} ` +
          `--max-price ${entry.maxPricePer1k}n${network}\`, or write the live value in the file`,
      );
    }
    if (budget !== entry.dailyBudget) {
      problems.push(
        `AutoPayLLM.models[${i}].dailyBudget: "${entry.name}" has daily budget ${budget} token units on chain, the ` +
          `file ${entry.dailyBudget}: propose it with \`agentgpt governance propose model-budget --model ` +
          `${entry.name} --daily-limit ${entry.dailyBudget}n${network}\`, or write the live value in the file`,
      );
    }
  }
  if (problems.length > 0) {
    throw new ParameterError(
      `the suite on chain ${run.chainId} is already handed over to the timelock, so only governance changes its ` +
        `providers and models; ${run.source} differs from the chain:\n  - ${problems.join("\n  - ")}`,
    );
  }

  // All live: the graph keeps exactly what the journal recorded (its values, which governance may have changed
  // since on chain), so Ignition sends nothing and reconciles without a difference.
  const journalFile = join(run.deploymentDir, "journal.jsonl");
  return existsSync(journalFile) ? recordedRegistry(await readFile(journalFile, "utf8")) : { providers: [], models: [] };
}

/** The providers and models the Registry module's journal records, in the order they were first recorded. */
export function recordedRegistry(journal: string): RegistryEntries {
  const providers: RegistryProvider[] = [];
  const models = new Map<string, { name: string; maxPricePer1k: bigint; dailyBudget: bigint }>();
  const value = (arg: unknown): bigint =>
    typeof arg === "object" && arg !== null && "value" in arg ? BigInt(String((arg as { value: unknown }).value)) : BigInt(String(arg));
  for (const line of journal.split("\n")) {
    if (!line.includes('"Registry#') || !line.includes("CALL_EXECUTION_STATE_INITIALIZE")) continue;
    const entry = JSON.parse(line) as { futureId: string; functionName: string; args: unknown[]; type: string };
    if (entry.type !== "CALL_EXECUTION_STATE_INITIALIZE" || !entry.futureId.startsWith("Registry#")) continue;
    const name = String(entry.args[0]);
    if (entry.functionName === "registerProvider") providers.push({ name, payee: String(entry.args[1]) });
    else if (entry.functionName === "setModelPrice") {
      models.set(name, { name, maxPricePer1k: value(entry.args[1]), dailyBudget: models.get(name)?.dailyBudget ?? 0n });
    } else if (entry.functionName === "setModelBudget") {
      const model = models.get(name) ?? { name, maxPricePer1k: 0n, dailyBudget: 0n };
      models.set(name, { ...model, dailyBudget: value(entry.args[1]) });
    }
  }
  return { providers, models: [...models.values()] };
}
