/**
 * `agentgpt`: the thin front door. Each command group lives in its own module under ./commands and registers
 * itself on the program; this file only wires them together and maps errors to exit codes.
 */
import { Command } from "commander";

import { reportAndExit } from "./errors.js";

const program = new Command()
  .name("agentgpt")
  .description("On-chain billing rail under a LiteLLM proxy: settle LLM usage in ERC-20 on Arbitrum and Polygon")
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(text) });

// Command groups (one module each). Keep this list in flow order.
const groups: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import("./commands/payer.js"),
  () => import("./commands/litellm.js"),
  () => import("./commands/backup.js"),
  () => import("./commands/relayer.js"),
  () => import("./commands/reconcile.js"),
  () => import("./commands/dispute.js"),
  () => import("./commands/provider.js"),
  () => import("./commands/governance.js"),
  () => import("./commands/keys.js"),
  () => import("./commands/monitor.js"),
  () => import("./commands/demo.js"),
];

for (const load of groups) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportAndExit(error);
}
