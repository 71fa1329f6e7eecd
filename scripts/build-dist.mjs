#!/usr/bin/env node
/**
 * `npm run build:dist` (the second half of `npm run build`): compiles the relayer and the contracts' TypeChain
 * bindings (ABIs and bytecode, from `hardhat build`) to JavaScript in dist/, which is what a production install runs
 * (`npm ci --omit=dev`: no Hardhat, no tsx, no TypeScript). Plain JavaScript on purpose: it runs before anything is
 * compiled.
 *
 * 1. Refuses to start without the bindings (`hardhat build` writes them: run `npm run build`).
 * 2. Removes dist/ (a file deleted from the sources must not live on in the package), runs
 *    `tsc -p tsconfig.build.json` (relayer/ and typechain-types/ to dist/, same layout).
 * 3. Copies what the code reads beside itself: the dashboard's static files.
 *
 * test/build/production-install.test.ts packs the package, checks that every ABI and bytecode in the packed dist/
 * equals artifacts/ (a stale ABI in a package is a money bug) and settles a batch with it.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "dist");

if (!existsSync(join(ROOT, "typechain-types", "index.ts")) || !existsSync(join(ROOT, "artifacts", "contracts"))) {
  process.stderr.write("build-dist: no contract bindings (typechain-types/) or artifacts/: run `npm run build` (hardhat build, then this)\n");
  process.exit(1);
}

const started = Date.now();
rmSync(DIST, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json")], {
  cwd: ROOT,
  stdio: "inherit",
});
if (tsc.status !== 0) {
  process.stderr.write(`build-dist: tsc exited with ${tsc.status ?? tsc.signal}\n`);
  process.exit(1);
}

cpSync(join(ROOT, "relayer", "dashboard", "static"), join(DIST, "relayer", "dashboard", "static"), { recursive: true });

process.stdout.write(`build-dist: dist/ written in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
