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

// Command groups (one module each), with the top-level commands each registers. Keep this list in flow order.
// Only the modules of the command asked for are loaded (each pulls in ethers, Redis clients, ...: about half of a
// command's start-up); `--help`, no command or a name not listed here load them all.
type Group = { readonly names: readonly string[]; load(): Promise<{ register(program: Command): void }> };
const groups: readonly Group[] = [
  { names: ["payer"], load: () => import("./commands/payer.js") },
  { names: ["litellm"], load: () => import("./commands/litellm.js") },
  { names: ["litellm"], load: () => import("./commands/backup.js") }, // agentgpt litellm backup ...
  { names: ["relayer"], load: () => import("./commands/relayer.js") },
  { names: ["reconcile"], load: () => import("./commands/reconcile.js") },
  { names: ["dispute"], load: () => import("./commands/dispute.js") },
  { names: ["provider"], load: () => import("./commands/provider.js") },
  { names: ["governance"], load: () => import("./commands/governance.js") },
  { names: ["keys"], load: () => import("./commands/keys.js") },
  { names: ["monitor"], load: () => import("./commands/monitor.js") },
  { names: ["demo"], load: () => import("./commands/demo.js") },
];

const asked = process.argv[2];
const chosen = asked === undefined ? [] : groups.filter((group) => group.names.includes(asked));
for (const group of chosen.length > 0 ? chosen : groups) (await group.load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportAndExit(error);
}
