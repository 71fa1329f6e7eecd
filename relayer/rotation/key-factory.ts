/**
 * Where a rotation's new relayer key comes from. One tiny interface, so the kind of key is a configuration choice:
 * an encrypted keystore the relayer writes itself (`KeystoreKeyFactory`), or a key generated inside a PKCS#11 token
 * (`Pkcs11KeyFactory`, pkcs11-key-factory.ts: only its address and a reference leave the token). A reference is plain JSON, stored in the key ring (key-ring.ts) so any settlement process,
 * the active one or a standby, can open the key again.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";

import type { SettlerSigner } from "../keys/signers/device-signer.js";

import { createKeystore, openKeystore } from "../keys/keystore.js";
import { KeyError } from "../keys/errors.js";

/** How to open a key again: JSON, never secret (a path, a token label and key id, a KMS key id). */
export type RelayerKeyRef =
  /** the settler's configured signer (`settler.signer`): the key the ring starts from */
  | { readonly kind: "configured" }
  /** an encrypted keystore the relayer created, opened with the rotation's keystore password */
  | { readonly kind: "keystore"; readonly path: string }
  /**
   * a key generated inside a PKCS#11 token (pkcs11-key-factory.ts): the token's label, the key's CKA_LABEL and CKA_ID,
   * and the module it was created through (informative: a process opens it through its own configured module, with
   * its own PIN)
   */
  | { readonly kind: "pkcs11"; readonly module: string; readonly token: string; readonly keyLabel: string; readonly keyId: string };

export interface CreatedRelayerKey {
  readonly address: string;
  readonly ref: RelayerKeyRef;
  /** the key opened for signing, when creating it left it open (in this process only; never stored) */
  readonly signer?: SettlerSigner;
}

/** Creates relayer keys and opens them for signing. Implementations never return or log a private key. */
export interface RelayerKeyFactory {
  /** Creates a new secp256k1 key where it will live; returns its address and how to open it again. */
  createRelayerKey(): Promise<CreatedRelayerKey>;
  /** Opens a key this factory created (`ref.kind` other than "configured"). */
  openRelayerKey(ref: RelayerKeyRef): Promise<SettlerSigner>;
}

export interface KeystoreKeyFactoryOptions {
  /** directory the keystores are written to (created 0700) */
  readonly dir: string;
  /** the keystores' password (read each time: a password file can change between rotations for new keys only) */
  readonly password: () => Promise<{ password: string; source: string }>;
}

/** New keys as encrypted JSON keystores in one directory, named after the time and a random tag. */
export class KeystoreKeyFactory implements RelayerKeyFactory {
  constructor(private readonly options: KeystoreKeyFactoryOptions) {}

  async createRelayerKey(): Promise<CreatedRelayerKey> {
    const { password, source } = await this.options.password();
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    const name = `relayer-${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(4).toString("hex")}.json`;
    const created = await createKeystore(join(this.options.dir, name), password, { passwordSource: source });
    return { address: created.address, ref: { kind: "keystore", path: created.path }, signer: created.wallet };
  }

  async openRelayerKey(ref: RelayerKeyRef): Promise<SettlerSigner> {
    if (ref.kind !== "keystore") throw new KeyError("INVALID_INPUT", `a keystore key factory cannot open a key of kind "${ref.kind}"`);
    const { password, source } = await this.options.password();
    return openKeystore(ref.path, password, source);
  }
}

/** The rotation's keystore password: `password_file` (relative to `baseDir`; one line) or the variable. */
export function keystorePassword(
  config: { readonly passwordEnv: string; readonly passwordFile?: string | undefined },
  baseDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): () => Promise<{ password: string; source: string }> {
  return async () => {
    if (config.passwordFile !== undefined) {
      const file = isAbsolute(config.passwordFile) ? config.passwordFile : resolve(baseDir, config.passwordFile);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        throw new KeyError("NO_PASSWORD", `settler.rotation.password_file ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? "error"}): write the new keys' password there (one line, chmod 600)`);
      }
      const password = text.replace(/\r?\n$/, "");
      if (password === "") throw new KeyError("NO_PASSWORD", `settler.rotation.password_file ${file} is empty`);
      return { password, source: `settler.rotation.password_file ${file}` };
    }
    const password = env[config.passwordEnv];
    if (password === undefined || password === "") {
      throw new KeyError("NO_PASSWORD", `set ${config.passwordEnv} to the password of the keys the rotation creates (or settler.rotation.password_file)`);
    }
    return { password, source: config.passwordEnv };
  };
}
