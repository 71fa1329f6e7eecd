#!/usr/bin/env node
// The `agentgpt` command: TypeScript sources run through tsx, so there is no build step.
import { register } from "tsx/esm/api";

register();
await import("../relayer/cli/main.ts");
