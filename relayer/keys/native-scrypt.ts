/**
 * Keystores use scrypt (N = 2^17, r = 8): ethers computes it in JavaScript, seconds of CPU on the event loop per
 * key. Registering Node's native `crypto.scrypt` (the same function, computed in libuv's thread pool) makes creating
 * and opening a keystore fast and non-blocking, which the rotation stage needs: it creates and opens keys while the
 * process keeps ingesting and settling. Output is identical, so keystores stay readable by every other tool.
 */
import { scrypt as nodeScrypt } from "node:crypto";

import { scrypt } from "ethers";

let registered = false;

export function useNativeScrypt(): void {
  if (registered) return;
  registered = true;
  scrypt.register(
    (password, salt, N, r, p, dkLen) =>
      new Promise((resolve, reject) => {
        // 128 * N * r bytes of working memory, plus room
        nodeScrypt(password, salt, dkLen, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (error, key) => (error ? reject(error) : resolve(new Uint8Array(key))));
      }),
  );
}
