/**
 * secp256k1 signatures and public keys as devices hand them out, turned into what Ethereum needs:
 * - a signature as raw r||s (PKCS#11 CKM_ECDSA) or DER `SEQUENCE { INTEGER r, INTEGER s }` (AWS KMS Sign) becomes
 *   an Ethereum signature: `s` moved to the lower half of the curve order (EIP-2: a high `s` is refused by the
 *   chain), and `v` found by recovering the public key with both recovery ids and keeping the one that gives the
 *   signer's address (a device does not say which);
 * - a public key as a PKCS#11 CKA_EC_POINT (DER OCTET STRING of the uncompressed point, or the bare point as some
 *   modules give it) or a DER SubjectPublicKeyInfo (AWS KMS GetPublicKey) becomes the key's address.
 * Nothing here sees a private key.
 */
import { Signature, SigningKey, computeAddress, getAddress, hexlify, toBeHex, type BytesLike, getBytes } from "ethers";

/** The order of secp256k1's group. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N >> 1n;

/** DER of the secp256k1 curve OID 1.3.132.0.10 (CKA_EC_PARAMS of a secp256k1 key). */
export const SECP256K1_OID_DER = Uint8Array.from([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]);
/** DER of id-ecPublicKey 1.2.840.10045.2.1 */
const EC_PUBLIC_KEY_OID_DER = Uint8Array.from([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);

export class SignatureFormatError extends Error {
  override readonly name = "SignatureFormatError";
}

interface Tlv {
  readonly tag: number;
  /** first byte of the value */
  readonly start: number;
  /** one past the value's last byte */
  readonly end: number;
}

/** One DER TLV at `offset` (definite lengths only, as DER requires). */
function readTlv(der: Uint8Array, offset: number, what: string): Tlv {
  if (offset + 2 > der.length) throw new SignatureFormatError(`${what}: truncated DER`);
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > der.length) throw new SignatureFormatError(`${what}: bad DER length`);
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  const end = start + length;
  if (end > der.length) throw new SignatureFormatError(`${what}: truncated DER`);
  return { tag, start, end };
}

function positiveInteger(der: Uint8Array, tlv: Tlv, what: string): bigint {
  if (tlv.tag !== 0x02 || tlv.end === tlv.start) throw new SignatureFormatError(`${what}: expected an INTEGER`);
  if (der[tlv.start]! & 0x80) throw new SignatureFormatError(`${what}: negative INTEGER`);
  return BigInt(hexlify(der.subarray(tlv.start, tlv.end)));
}

/** r and s of a DER ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`). */
export function parseDerSignature(der: BytesLike): { r: bigint; s: bigint } {
  const bytes = getBytes(der);
  const seq = readTlv(bytes, 0, "DER signature");
  if (seq.tag !== 0x30 || seq.end !== bytes.length) throw new SignatureFormatError("DER signature: expected one SEQUENCE");
  const rTlv = readTlv(bytes, seq.start, "DER signature r");
  const sTlv = readTlv(bytes, rTlv.end, "DER signature s");
  if (sTlv.end !== seq.end) throw new SignatureFormatError("DER signature: trailing bytes");
  return { r: positiveInteger(bytes, rTlv, "DER signature r"), s: positiveInteger(bytes, sTlv, "DER signature s") };
}

/** r and s of a raw r||s signature (PKCS#11 CKM_ECDSA: two 32-byte big-endian halves for secp256k1). */
export function parseRawSignature(raw: BytesLike): { r: bigint; s: bigint } {
  const bytes = getBytes(raw);
  if (bytes.length !== 64) throw new SignatureFormatError(`raw ECDSA signature: ${bytes.length} bytes, expected 64 (r||s of secp256k1)`);
  return { r: BigInt(hexlify(bytes.subarray(0, 32))), s: BigInt(hexlify(bytes.subarray(32))) };
}

/**
 * The Ethereum signature of `digest` by `address` from a device's (r, s): `s` normalized to the lower half, `v`
 * recovered. Throws when neither recovery id gives `address` (the device signed with another key, or the digest
 * differs): a signature that would be sent from an unexpected account is never returned.
 */
export function ethereumSignature(digest: BytesLike, rs: { r: bigint; s: bigint }, address: string): Signature {
  const { r } = rs;
  let { s } = rs;
  if (r <= 0n || r >= SECP256K1_N || s <= 0n || s >= SECP256K1_N) throw new SignatureFormatError("ECDSA signature out of range for secp256k1");
  if (s > HALF_N) s = SECP256K1_N - s;
  const wanted = getAddress(address);
  const hash = hexlify(getBytes(digest));
  for (const yParity of [0, 1] as const) {
    const candidate = Signature.from({ r: toBeHex(r, 32), s: toBeHex(s, 32), yParity });
    let recovered: string;
    try {
      recovered = computeAddress(SigningKey.recoverPublicKey(hash, candidate));
    } catch {
      continue;
    }
    if (recovered === wanted) return candidate;
  }
  throw new SignatureFormatError(`the device's signature does not recover to ${wanted}: it signed with another key`);
}

/** The address of an uncompressed (or compressed) secp256k1 point; throws if it is not on the curve. */
export function addressOfPoint(point: Uint8Array, what: string): string {
  try {
    return computeAddress(SigningKey.computePublicKey(point, false));
  } catch {
    throw new SignatureFormatError(`${what}: not a secp256k1 public key`);
  }
}

/** The address of a PKCS#11 CKA_EC_POINT: DER OCTET STRING of the point (PKCS#11 2.40) or the bare point. */
export function addressOfEcPoint(ecPoint: BytesLike): string {
  const bytes = getBytes(ecPoint);
  if (bytes.length === 65 && bytes[0] === 0x04) return addressOfPoint(bytes, "CKA_EC_POINT");
  const octets = readTlv(bytes, 0, "CKA_EC_POINT");
  if (octets.tag !== 0x04 || octets.end !== bytes.length) throw new SignatureFormatError("CKA_EC_POINT: expected a DER OCTET STRING holding the point");
  return addressOfPoint(bytes.subarray(octets.start, octets.end), "CKA_EC_POINT");
}

/** The address of a DER SubjectPublicKeyInfo of a secp256k1 key (AWS KMS GetPublicKey); other curves are refused. */
export function addressOfSpki(spki: BytesLike): string {
  const bytes = getBytes(spki);
  const outer = readTlv(bytes, 0, "SubjectPublicKeyInfo");
  if (outer.tag !== 0x30 || outer.end !== bytes.length) throw new SignatureFormatError("SubjectPublicKeyInfo: expected one SEQUENCE");
  const algorithm = readTlv(bytes, outer.start, "SubjectPublicKeyInfo algorithm");
  if (algorithm.tag !== 0x30) throw new SignatureFormatError("SubjectPublicKeyInfo: expected the AlgorithmIdentifier SEQUENCE");
  const algorithmBody = bytes.subarray(algorithm.start, algorithm.end);
  const expected = new Uint8Array([...EC_PUBLIC_KEY_OID_DER, ...SECP256K1_OID_DER]);
  if (hexlify(algorithmBody) !== hexlify(expected)) throw new SignatureFormatError("SubjectPublicKeyInfo: not an EC key on secp256k1 (ECC_SECG_P256K1)");
  const bits = readTlv(bytes, algorithm.end, "SubjectPublicKeyInfo key");
  if (bits.tag !== 0x03 || bits.end !== outer.end || bytes[bits.start] !== 0x00) throw new SignatureFormatError("SubjectPublicKeyInfo: expected the key's BIT STRING");
  return addressOfPoint(bytes.subarray(bits.start + 1, bits.end), "SubjectPublicKeyInfo key");
}
