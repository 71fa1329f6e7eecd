/**
 * On a fresh clone `npm ci` installs the dependencies, but the contracts' artifacts and their TypeScript bindings
 * (artifacts/, typechain-types/, both git-ignored) only exist after a build, and every `agentgpt` command run from
 * the sources needs them. `ensureBuild` runs `hardhat build` once when they are missing, with a progress line (the
 * Solidity compiler is the pinned npm `solc`: nothing is downloaded). Imports nothing that needs the build.
 *
 * A production install (`npm ci --omit=dev` of the packed package, or the container image) runs the compiled
 * dist/ instead and has no Hardhat: the commands that start a chain (the demo) say so through `requireDevInstall`.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { PACKAGE_ROOT } from "../config/package-root.js";
import { DemoError } from "./errors.js";

export const REPO_ROOT = PACKAGE_ROOT;

/** Hardhat's command line, present only in a dev install (`npm ci` with the devDependencies). */
export function hardhatCli(root = REPO_ROOT): string {
  return join(root, "node_modules", "hardhat", "dist", "src", "cli.js");
}

/** Whether Hardhat (a devDependency) is installed: false in a production install. */
export function hasDevInstall(root = REPO_ROOT): boolean {
  return existsSync(hardhatCli(root)) && existsSync(join(root, "fixtures"));
}

/** Throws a DemoError naming `what` and the fix when this is a production install without Hardhat. */
export function requireDevInstall(what: string, root = REPO_ROOT): void {
  if (hasDevInstall(root)) return;
  throw new DemoError(
    `${what} needs the dev install: it starts a hardhat node and reads the clone's fixtures, and this is a production install without Hardhat (npm ci --omit=dev, or the container image). Run it from a clone after \`npm ci\` (with the devDependencies).`,
    2,
  );
}

/** Files that exist only after a build. */
const BUILT = [join("typechain-types", "index.ts"), join("artifacts", "contracts", "AutoPayLLM.sol", "AutoPayLLM.json")];

export function isBuilt(root = REPO_ROOT): boolean {
  return BUILT.every((file) => existsSync(join(root, file)));
}

/** Builds the contracts when their artifacts are missing; exits the process with the compiler's output on failure. */
export async function ensureBuild(options: { root?: string; stream?: NodeJS.WriteStream } = {}): Promise<void> {
  const root = options.root ?? REPO_ROOT;
  if (isBuilt(root)) return;
  const stream = options.stream ?? process.stderr;
  const started = Date.now();
  const line = () => `agentgpt: compiling the contracts (first run after npm ci; about 2 minutes, once) ... ${Math.round((Date.now() - started) / 1000)} s`;
  stream.write(stream.isTTY ? line() : `${line()}\n`);
  const ticker = stream.isTTY ? setInterval(() => stream.write(`\r${line()}`), 1000) : null;
  let output = "";
  const code = await new Promise<number | null>((done) => {
    const child = spawn(process.execPath, [hardhatCli(root), "build", "--quiet"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
    });
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", (error) => {
      output += String(error);
      done(1);
    });
    child.on("exit", (exitCode) => done(exitCode));
  });
  if (ticker !== null) clearInterval(ticker);
  if (code !== 0 || !isBuilt(root)) {
    stream.write(`${stream.isTTY ? "\n" : ""}agentgpt: the contracts did not compile (hardhat build exited with ${code}):\n${output.slice(-4000)}\nRun \`npm run build\` to see the whole output.\n`);
    process.exit(1);
  }
  stream.write(`${stream.isTTY ? `\r${line()}` : `agentgpt: contracts compiled in ${Math.round((Date.now() - started) / 1000)} s`}\n`);
}
