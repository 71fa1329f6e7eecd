/**
 * The IPFS content id of a batch file, computed locally: CIDv1, raw codec, sha2-256 (what `ipfs add --cid-version 1
 * --raw-leaves` gives for a file of one block, up to 1 MiB with default chunking; larger files are pinned
 * as their raw bytes too, but a Kubo node would chunk them: the CID here is of the bytes, not of a UnixFS DAG).
 * No IPFS node is needed; it goes on-chain as `dataCid`.
 */
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";

export async function contentId(bytes: Uint8Array): Promise<string> {
  const digest = await sha256.digest(bytes);
  return CID.create(1, raw.code, digest).toString();
}

/** Whether `cid` is the content id of `bytes`. */
export async function matchesContentId(cid: string, bytes: Uint8Array): Promise<boolean> {
  return (await contentId(bytes)) === cid;
}
