#!/usr/bin/env node
// The `agentgpt` command: TypeScript sources run through tsx, so there is no build step of our own. The contracts'
// artifacts and bindings are compiled once, on the first run after `npm ci` (relayer/demo/build.ts).
import { register } from "tsx/esm/api";

register();
await (await import("../relayer/demo/build.ts")).ensureBuild();
await import("../relayer/cli/main.ts");
