/** A pass-through stream that hashes (SHA-256) and counts what flows through it: the archive's own checksum. */
import { createHash } from "node:crypto";
import { Transform } from "node:stream";

export interface HashingStream {
  readonly stream: Transform;
  /** the SHA-256 (hex) and size of everything that passed, once the stream has ended */
  result(): { sha256: string; bytes: number };
}

export function hashingStream(): HashingStream {
  const hash = createHash("sha256");
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest("hex"), bytes }) };
}
