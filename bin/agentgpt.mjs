#!/usr/bin/env node
// The `agentgpt` command. Two ways to run, chosen by what the package holds:
// - a clone with its dev install (the TypeScript sources and tsx are here): the sources run through tsx, and the
//   contracts' artifacts and bindings are compiled once, on the first run after `npm ci` (relayer/demo/build.ts);
// - a production install (`npm pack` of a built tree, or the container image: dist/ and no sources; or a clone
//   built with `npm run build` whose devDependencies were then pruned): the JavaScript that `npm run build` compiled
//   to dist/ runs as it is, with the dependencies only (`npm ci --omit=dev`).
import { existsSync } from "node:fs";

import { mallocTuningEnv } from "./malloc-tuning.mjs";
import { NODE_FLOOR, nodeTooOld } from "./node-floor.mjs";

if (nodeTooOld(process.versions.node)) {
  process.stderr.write(`agentgpt: Node.js ${process.versions.node} is too old: install Node.js ${NODE_FLOOR} or newer (e.g. nvm install 22)\n`);
  process.exit(2);
}
// The server commands run with glibc malloc settings that glibc reads only at start: re-execute with them (see
// malloc-tuning.mjs). execve keeps the PID, stdio and Node's own flags.
const tuned = typeof process.execve === "function" ? mallocTuningEnv(process.argv.slice(2), process.env, process.platform) : null;
if (tuned !== null) process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], tuned);
const SOURCES = new URL("../relayer/cli/main.ts", import.meta.url);
const COMPILED = new URL("../dist/relayer/cli/main.js", import.meta.url);
/** tsx's loader API, or null when tsx (a devDependency) is not installed. */
async function tsx() {
  try {
    return await import("tsx/esm/api");
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND") return null;
    throw error;
  }
}
const loader = existsSync(SOURCES) ? await tsx() : null;
if (loader !== null) {
  loader.register();
  await (await import("../relayer/demo/build.ts")).ensureBuild();
  await import(SOURCES.href);
} else if (existsSync(COMPILED)) {
  await import(COMPILED.href);
} else {
  process.stderr.write(
    "agentgpt: nothing to run: no dist/ (build it with `npm run build`, which needs the dev install: `npm ci`) and no tsx to run the sources (install the devDependencies: `npm ci`)\n",
  );
  process.exit(2);
}
