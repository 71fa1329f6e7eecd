/**
 * On a fresh clone `npm ci` installs the dependencies, but the contracts' artifacts and their TypeScript bindings
 * (artifacts/, typechain-types/, both git-ignored) only exist after a build, and every `agentgpt` command needs
 * them. `ensureBuild` runs `hardhat build` once when they are missing, with a progress line (the Solidity compiler
 * is the pinned npm `solc`: nothing is downloaded). Imports nothing that needs the build.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

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
    const child = spawn(process.execPath, [join(root, "node_modules", "hardhat", "dist", "src", "cli.js"), "build", "--quiet"], {
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
