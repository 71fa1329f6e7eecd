/**
 * The settler's signing key, of any kind the configuration names (relayer/keys/signers): an encrypted JSON keystore
 * decrypted at start and again on each reload (SIGHUP), its password from an environment variable (`password_env`,
 * fixed when the process starts) or from a file (`password_file`, read again on each reload, so a rotation to a key
 * with another password needs no restart); for development only, a raw private key in an environment variable; a
 * key inside an HSM through PKCS#11 (`kind: pkcs11`), or an AWS KMS key (`kind: aws_kms`), which never leave their
 * device. Keys, passwords and PINs are never logged or put in an error message.
 */
import type { SignerConfig } from "../config/index.js";
import type { SettlerSigner } from "../keys/signers/device-signer.js";
import { loadConfiguredSigner, SigningKeyError, type LoadSignerOptions } from "../keys/signers/load-signer.js";

export { SigningKeyError };
export type { SettlerSigner };

export async function loadSigningKey(
  signer: Omit<SignerConfig, "retiring">,
  options: Omit<LoadSignerOptions, "label"> & { label?: string } = {},
): Promise<{ wallet: SettlerSigner; source: string; development: boolean; close(): Promise<void> }> {
  const loaded = await loadConfiguredSigner(signer, options);
  return { wallet: loaded.signer, source: loaded.source, development: loaded.development, close: () => loaded.close() };
}
