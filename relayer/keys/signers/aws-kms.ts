/**
 * Signing with an AWS KMS asymmetric key of spec ECC_SECG_P256K1 (key usage SIGN_VERIFY): the private key never
 * leaves KMS. The address comes from GetPublicKey (a DER SubjectPublicKeyInfo); each digest is signed by
 * `Sign` with MessageType DIGEST and SigningAlgorithm ECDSA_SHA_256, which returns a DER signature whose `s` may be
 * in the upper half (KMS does not canonicalize): device-signer normalizes it and recovers `v`.
 * Credentials come from the AWS SDK's default chain (environment, shared config and SSO, web identity, ECS/EC2
 * instance roles); the process needs kms:GetPublicKey and kms:Sign on the key, nothing more.
 */
import { GetPublicKeyCommand, KMSClient, SignCommand, type KMSClientConfig } from "@aws-sdk/client-kms";

import { addressOfSpki, parseDerSignature } from "./ecdsa.js";
import { DeviceSigner, type DigestDevice } from "./device-signer.js";
import { SignerError } from "./errors.js";

export interface AwsKmsKeyRef {
  /** key id, key ARN, alias name (alias/...) or alias ARN */
  readonly keyId: string;
  /** default: the SDK's (AWS_REGION, shared config) */
  readonly region?: string | undefined;
  /** another endpoint than the region's (a VPC endpoint, a stand-in for tests) */
  readonly endpoint?: string | undefined;
}

class KmsDevice implements DigestDevice {
  readonly description: string;

  constructor(
    private readonly client: KMSClient,
    private readonly keyId: string,
  ) {
    this.description = `aws_kms key ${keyId}`;
  }

  async signDigest(digest: Uint8Array): Promise<{ r: bigint; s: bigint }> {
    let signature: Uint8Array | undefined;
    try {
      ({ Signature: signature } = await this.client.send(new SignCommand({ KeyId: this.keyId, Message: digest, MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" })));
    } catch (error) {
      throw new SignerError("DEVICE_ERROR", `${this.description}: Sign failed (${kmsReason(error)})`, { cause: error });
    }
    if (signature === undefined) throw new SignerError("DEVICE_ERROR", `${this.description}: Sign returned no signature`);
    return parseDerSignature(signature);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

function kmsReason(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * A signer for the KMS key `ref` names: reads its public key (checked: ECC_SECG_P256K1, SIGN_VERIFY) for the address.
 * `clientConfig` adds SDK settings (tests: credentials); credentials otherwise come from the default chain.
 */
export async function openAwsKmsSigner(ref: AwsKmsKeyRef, clientConfig: Partial<KMSClientConfig> = {}): Promise<DeviceSigner> {
  const client = new KMSClient({
    ...(ref.region === undefined ? {} : { region: ref.region }),
    ...(ref.endpoint === undefined ? {} : { endpoint: ref.endpoint }),
    maxAttempts: 3,
    ...clientConfig,
  });
  try {
    let answer;
    try {
      answer = await client.send(new GetPublicKeyCommand({ KeyId: ref.keyId }));
    } catch (error) {
      throw new SignerError(
        "KEY_NOT_FOUND",
        `aws_kms key ${ref.keyId}: GetPublicKey failed (${kmsReason(error)}): check key_id, region and the credentials' kms:GetPublicKey permission`,
        { cause: error },
      );
    }
    if (answer.KeySpec !== undefined && answer.KeySpec !== "ECC_SECG_P256K1") {
      throw new SignerError("WRONG_KEY", `aws_kms key ${ref.keyId} is ${answer.KeySpec}: Ethereum needs an ECC_SECG_P256K1 key (create it with --key-spec ECC_SECG_P256K1 --key-usage SIGN_VERIFY)`);
    }
    if (answer.KeyUsage !== undefined && answer.KeyUsage !== "SIGN_VERIFY") {
      throw new SignerError("WRONG_KEY", `aws_kms key ${ref.keyId} has key usage ${answer.KeyUsage}: it must be SIGN_VERIFY`);
    }
    if (answer.PublicKey === undefined) throw new SignerError("KEY_NOT_FOUND", `aws_kms key ${ref.keyId}: GetPublicKey returned no public key`);
    let address: string;
    try {
      address = addressOfSpki(answer.PublicKey);
    } catch (error) {
      throw new SignerError("WRONG_KEY", `aws_kms key ${ref.keyId}: ${(error as Error).message}`, { cause: error });
    }
    return new DeviceSigner(address, new KmsDevice(client, ref.keyId));
  } catch (error) {
    client.destroy();
    throw error;
  }
}
