#!/usr/bin/env node
// The `agentgpt` command: TypeScript sources run through tsx, so there is no build step of our own. The contracts'
// artifacts and bindings are compiled once, on the first run after `npm ci` (relayer/demo/build.ts).
import { NODE_FLOOR, nodeTooOld } from "./node-floor.mjs";

if (nodeTooOld(process.versions.node)) {
  process.stderr.write(`agentgpt: Node.js ${process.versions.node} is too old: install Node.js ${NODE_FLOOR} or newer (e.g. nvm install 22)\n`);
  process.exit(2);
}
const { register } = await import("tsx/esm/api");
register();
await (await import("../relayer/demo/build.ts")).ensureBuild();
await import("../relayer/cli/main.ts");
