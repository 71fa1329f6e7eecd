/**
 * The package's root folder (the one holding package.json), found from a module's own location. The relayer runs
 * either from its TypeScript sources (`relayer/<stage>/x.ts`, in a clone) or from the compiled JavaScript
 * (`dist/relayer/<stage>/x.js`, in a production install): a fixed number of `..` is right for only one of them, so
 * files outside the code (package.json, deploy/deployments, fixtures) are found from here.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest folder above `from` (a module URL or a path) that holds a package.json. */
export function findPackageRoot(from: string | URL): string {
  let dir = dirname(from instanceof URL || from.startsWith("file:") ? fileURLToPath(from) : from);
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${String(from)}`);
    dir = parent;
  }
}

/** This package's root: `<root>/relayer/config` in a clone, `<root>/dist/relayer/config` when compiled. */
export const PACKAGE_ROOT = findPackageRoot(import.meta.url);
