#!/usr/bin/env node
// The `agentgpt` command. Two ways to run, chosen by what the package holds:
// - a clone (the TypeScript sources are here): the sources run through tsx (a devDependency), and the contracts'
//   artifacts and bindings are compiled once, on the first run after `npm ci` (relayer/demo/build.ts);
// - a production install (`npm pack` of a built tree, or the container image: dist/ and no sources): the JavaScript
//   that `npm run build` compiled to dist/ runs as it is, with the dependencies only (`npm ci --omit=dev`).
import { existsSync } from "node:fs";

import { NODE_FLOOR, nodeTooOld } from "./node-floor.mjs";

if (nodeTooOld(process.versions.node)) {
  process.stderr.write(`agentgpt: Node.js ${process.versions.node} is too old: install Node.js ${NODE_FLOOR} or newer (e.g. nvm install 22)\n`);
  process.exit(2);
}
const SOURCES = new URL("../relayer/cli/main.ts", import.meta.url);
const COMPILED = new URL("../dist/relayer/cli/main.js", import.meta.url);
if (existsSync(SOURCES)) {
  const { register } = await import("tsx/esm/api");
  register();
  await (await import("../relayer/demo/build.ts")).ensureBuild();
  await import(SOURCES.href);
} else if (existsSync(COMPILED)) {
  await import(COMPILED.href);
} else {
  process.stderr.write("agentgpt: this package has neither its sources nor dist/: build it with `npm run build` before packing it\n");
  process.exit(2);
}
