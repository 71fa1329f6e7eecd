/**
 * EVM addresses: validation and EIP-55 checksums. A mixed-case address must carry a valid checksum (a typo in a
 * payer wallet would bill a stranger); all-lowercase and all-uppercase hex are accepted and checksummed.
 */
import { keccak_256 } from "@noble/hashes/sha3.js";

const HEX_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const ZERO = `0x${"0".repeat(40)}`;

export class AddressError extends Error {
  override readonly name = "AddressError";
  readonly code = "ADDRESS_INVALID";
}

function checksum(lowerHex: string): string {
  const hash = keccak_256(new TextEncoder().encode(lowerHex));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const char = lowerHex[i]!;
    const byte = hash[i >> 1]!;
    const nibble = i % 2 === 0 ? byte >> 4 : byte & 0x0f;
    out += nibble >= 8 ? char.toUpperCase() : char;
  }
  return out;
}

/** Returns the EIP-55 form of `input`, or throws an AddressError that says what is wrong. */
export function toChecksumAddress(input: unknown): string {
  if (typeof input !== "string" || !HEX_ADDRESS.test(input)) {
    throw new AddressError(`${JSON.stringify(input)} is not an EVM address (0x followed by 40 hex digits)`);
  }
  const body = input.slice(2);
  const expected = checksum(body.toLowerCase());
  const mixedCase = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixedCase && expected !== input) {
    throw new AddressError(`${input} has a wrong EIP-55 checksum (a typo?); the checksummed form would be ${expected}`);
  }
  return expected;
}

/** Like toChecksumAddress, and also refuses the zero address (it cannot pay). */
export function toPayerAddress(input: unknown): string {
  const address = toChecksumAddress(input);
  if (address === ZERO) throw new AddressError("the zero address cannot be a payer");
  return address;
}

/** True when `input` is an address toPayerAddress accepts. */
export function isPayerAddress(input: unknown): boolean {
  try {
    toPayerAddress(input);
    return true;
  } catch {
    return false;
  }
}
