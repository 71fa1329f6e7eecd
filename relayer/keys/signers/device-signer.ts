/**
 * An ethers v6 signer whose key lives in a device (an HSM through PKCS#11, a cloud KMS): the process holds the
 * key's address and a way to have a 32-byte digest signed, never the private key. Transactions, messages (EIP-191)
 * and typed data (EIP-712) are hashed here exactly as ethers' Wallet hashes them; the device signs the digest; the
 * signature is made canonical (low `s`, recovered `v`, checked to come from `address`) before it is used.
 */
import {
  AbstractSigner,
  Transaction,
  TypedDataEncoder,
  assert,
  assertArgument,
  copyRequest,
  getAddress,
  getBytes,
  hashMessage,
  resolveAddress,
  resolveProperties,
  type Provider,
  type Signature,
  type TransactionRequest,
  type TypedDataDomain,
  type TypedDataField,
} from "ethers";

import { ethereumSignature } from "./ecdsa.js";

/** What the settler needs of a signer: an ethers signer whose address is known without a round trip. */
export type SettlerSigner = AbstractSigner & { readonly address: string };

/** A device that signs 32-byte digests with one secp256k1 key. */
export interface DigestDevice {
  /** for logs and messages: "pkcs11 token relayer, key relayer-1" (never a PIN or a secret) */
  readonly description: string;
  /** ECDSA over the digest as the device returns it: r and s (s may be high) */
  signDigest(digest: Uint8Array): Promise<{ r: bigint; s: bigint }>;
  /** releases the device's session or client (idempotent) */
  close?(): Promise<void>;
}

export class DeviceSigner extends AbstractSigner {
  readonly address: string;

  constructor(
    address: string,
    readonly device: DigestDevice,
    provider: Provider | null = null,
  ) {
    super(provider);
    this.address = getAddress(address);
  }

  override async getAddress(): Promise<string> {
    return this.address;
  }

  override connect(provider: Provider | null): DeviceSigner {
    return new DeviceSigner(this.address, this.device, provider);
  }

  /** The canonical Ethereum signature of `digest` by this key, made by the device. */
  async signDigest(digest: Uint8Array | string): Promise<Signature> {
    const bytes = getBytes(digest);
    assertArgument(bytes.length === 32, "a digest is 32 bytes", "digest", digest);
    return ethereumSignature(bytes, await this.device.signDigest(bytes), this.address);
  }

  override async signTransaction(request: TransactionRequest): Promise<string> {
    const tx = copyRequest(request);
    const { to, from } = await resolveProperties({
      to: tx.to ? resolveAddress(tx.to, this) : undefined,
      from: tx.from ? resolveAddress(tx.from, this) : undefined,
    });
    if (to != null) tx.to = to;
    if (from != null) tx.from = from;
    if (tx.from != null) {
      assertArgument(getAddress(tx.from as string) === this.address, "transaction from address mismatch", "tx.from", tx.from);
      delete tx.from;
    }
    const btx = Transaction.from(tx as Parameters<typeof Transaction.from>[0]);
    btx.signature = await this.signDigest(btx.unsignedHash);
    return btx.serialized;
  }

  override async signMessage(message: string | Uint8Array): Promise<string> {
    return (await this.signDigest(hashMessage(message))).serialized;
  }

  override async signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
    const populated = await TypedDataEncoder.resolveNames(domain, types, value, async (name: string) => {
      assert(this.provider != null, "cannot resolve ENS names without a provider", "UNSUPPORTED_OPERATION", { operation: "resolveName", info: { name } });
      const address = await this.provider.resolveName(name);
      assert(address != null, "unconfigured ENS name", "UNCONFIGURED_NAME", { value: name });
      return address;
    });
    return (await this.signDigest(TypedDataEncoder.hash(populated.domain, types, populated.value))).serialized;
  }

  /** Releases the device's session or client. */
  async close(): Promise<void> {
    await this.device.close?.();
  }
}
