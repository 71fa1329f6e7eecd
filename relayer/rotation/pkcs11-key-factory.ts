/**
 * New relayer keys generated inside a PKCS#11 token (`settler.rotation.key: pkcs11`): C_GenerateKeyPair on the
 * token, the private key sensitive and never extractable (createPkcs11SignerKey refuses and destroys anything else),
 * labelled `<label_prefix><time>-<random>` with a random CKA_ID. Only the address and a reference (token label, key
 * label, key id: never the PIN) leave the token; the reference goes to the key ring, so any settlement process, after
 * a restart too, finds the key again by label and id through its own configured module and PIN.
 */
import { randomBytes } from "node:crypto";
import { isAbsolute, resolve } from "node:path";

import type { RotationPkcs11Config } from "../config/index.js";
import { KeyError } from "../keys/errors.js";
import type { SettlerSigner } from "../keys/signers/device-signer.js";
import { SignerError } from "../keys/signers/errors.js";
import { createPkcs11SignerKey, loadConfiguredSigner, SigningKeyError } from "../keys/signers/load-signer.js";
import type { CreatedRelayerKey, RelayerKeyFactory, RelayerKeyRef } from "./key-factory.js";

export interface Pkcs11KeyFactoryOptions {
  readonly config: RotationPkcs11Config;
  /** relative module / pin_file paths are relative to this (the config file's directory) */
  readonly baseDir: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

type Pkcs11Ref = Extract<RelayerKeyRef, { kind: "pkcs11" }>;

export class Pkcs11KeyFactory implements RelayerKeyFactory {
  private readonly module: string;

  constructor(private readonly options: Pkcs11KeyFactoryOptions) {
    this.module = isAbsolute(options.config.module) ? options.config.module : resolve(options.baseDir, options.config.module);
  }

  /** A label no key on the token has yet: the prefix, the time (sortable) and 4 random bytes. */
  private newLabel(): string {
    return `${this.options.config.labelPrefix}${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(4).toString("hex")}`;
  }

  async createRelayerKey(): Promise<CreatedRelayerKey> {
    const { config } = this.options;
    let created;
    try {
      created = await createPkcs11SignerKey(
        { module: this.module, token: config.token, slot: config.slot, pinEnv: config.pinEnv, pinFile: config.pinFile, keyLabel: this.newLabel() },
        { baseDir: this.options.baseDir, ...(this.options.env ? { env: this.options.env } : {}) },
      );
    } catch (error) {
      throw this.named(error, "creating a relayer key");
    }
    const ref: Pkcs11Ref = { kind: "pkcs11", module: this.module, token: created.token, keyLabel: created.label, keyId: created.id };
    // open it by its reference at once: a key the ring could not open again is never authorized on a chain
    const signer = await this.openRelayerKey(ref);
    if (signer.address !== created.address) {
      throw new KeyError("NOT_READY", `settler.rotation.pkcs11: the key created as ${created.address} opens as ${signer.address} by its label and id: check the token`);
    }
    return { address: created.address, ref, signer };
  }

  async openRelayerKey(ref: RelayerKeyRef): Promise<SettlerSigner> {
    if (ref.kind !== "pkcs11") throw new KeyError("INVALID_INPUT", `a pkcs11 key factory cannot open a key of kind "${ref.kind}"`);
    const { config } = this.options;
    try {
      const loaded = await loadConfiguredSigner(
        {
          kind: "pkcs11",
          passwordEnv: "AGENTGPT_KEYSTORE_PASSWORD",
          // the token by the label it had when the key was made (slot numbers can change between restarts)
          pkcs11: { module: this.module, token: ref.token, keyLabel: ref.keyLabel, keyId: ref.keyId, pinEnv: config.pinEnv, pinFile: config.pinFile },
        },
        { baseDir: this.options.baseDir, label: "settler.rotation.pkcs11", ...(this.options.env ? { env: this.options.env } : {}) },
      );
      return loaded.signer;
    } catch (error) {
      throw this.named(error, `opening the relayer key "${ref.keyLabel}" (id ${ref.keyId}) of the key ring`);
    }
  }

  /** Device errors as KeyError naming the setting (the PIN never appears: the signer errors never hold it). */
  private named(error: unknown, doing: string): Error {
    if (error instanceof SigningKeyError || error instanceof SignerError) {
      const message = error.message.startsWith("settler.rotation") ? error.message : `settler.rotation.pkcs11: ${error.message}`;
      return new KeyError("NOT_READY", `${doing}: ${message}`, { cause: error });
    }
    return error as Error;
  }
}
