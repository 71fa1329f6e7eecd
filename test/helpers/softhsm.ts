/**
 * SoftHSM2 tokens for tests: Debian's `softhsm2` (installed by .ci/run), with its configuration and token directory
 * in a temporary directory of this process (SOFTHSM2_CONF points there, for this process and the CLI processes it
 * starts). Each call initializes a fresh token with `softhsm2-util --init-token --free`; since a PKCS#11 library
 * lists tokens when it is initialized, the process's PKCS#11 libraries are finalized so the next signer sees it.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { finalizePkcs11 } from "../../relayer/keys/signers/pkcs11.js";

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export interface SoftHsmToken {
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  /** SOFTHSM2_CONF, for processes started by the test */
  readonly env: Record<string, string>;
}

let conf: string | null = null;

/** The process's SoftHSM2 configuration (created once; removed when the process exits). */
function softHsmConf(): string {
  if (conf !== null) return conf;
  const dir = mkdtempSync(join(tmpdir(), "agentgpt-softhsm-"));
  mkdirSync(join(dir, "tokens"), { mode: 0o700 });
  const file = join(dir, "softhsm2.conf");
  writeFileSync(file, `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = file;
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  conf = file;
  return file;
}

let count = 0;

/** A new, initialized token with a user PIN. */
export async function softHsmToken(name = "relayer"): Promise<SoftHsmToken> {
  if (!existsSync(SOFTHSM_MODULE)) throw new Error(`${SOFTHSM_MODULE} is missing: install Debian's softhsm2 (apt-get install softhsm2; .ci/run does)`);
  const file = softHsmConf();
  count += 1;
  const label = `${name}-${process.pid}-${count}`.slice(0, 32);
  const pin = `user-pin-${count}-${Math.random().toString(36).slice(2, 10)}`;
  const soPin = `so-pin-${count}-${Math.random().toString(36).slice(2, 10)}`;
  await promisify(execFile)("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin], { env: { ...process.env, SOFTHSM2_CONF: file } });
  finalizePkcs11();
  return { module: SOFTHSM_MODULE, label, pin, soPin, env: { SOFTHSM2_CONF: file } };
}
