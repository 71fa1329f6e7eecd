/**
 * Fetching a batch file by its CID when the local archive does not have it: from an IPFS HTTP gateway
 * (`GET <url>/ipfs/<cid>`, trustless raw block first) or a Kubo node's RPC (`POST <url>/api/v0/cat?arg=<cid>`).
 * The bytes are accepted only when their own CID (computed here: CIDv1, raw, sha2-256, as the batcher computes it)
 * equals the one on-chain: a gateway is never trusted.
 */
import { contentId } from "../batcher/content-id.js";
import { redactUrl } from "../chain/networks.js";
import { DisputeError } from "./errors.js";

export type IpfsApi = "gateway" | "kubo";

export interface IpfsOptions {
  readonly url: string;
  /** "gateway" (default) or "kubo" (the node's RPC API, usually port 5001) */
  readonly api?: IpfsApi | undefined;
  /** per request (ms, default 30,000) */
  readonly timeoutMs?: number | undefined;
  /** largest file accepted (bytes, default 64 MiB) */
  readonly maxBytes?: number | undefined;
}

export class IpfsClient {
  readonly api: IpfsApi;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;

  constructor(readonly options: IpfsOptions) {
    this.api = options.api ?? "gateway";
    this.base = options.url.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  get label(): string {
    return `${redactUrl(this.base)} (${this.api})`;
  }

  /**
   * The bytes whose CID is `cid`.
   *
   * @throws DisputeError IPFS_FAILED when the node does not answer or answers with other bytes.
   */
  async fetch(cid: string): Promise<Uint8Array> {
    if (!/^[a-zA-Z0-9]{10,100}$/.test(cid)) throw new DisputeError("IPFS_FAILED", `the CID on-chain ("${cid}") is not a CID`);
    const request =
      this.api === "kubo"
        ? { url: `${this.base}/api/v0/cat?arg=${encodeURIComponent(cid)}`, init: { method: "POST" } }
        : { url: `${this.base}/ipfs/${encodeURIComponent(cid)}`, init: { method: "GET" } };
    let response: Response;
    try {
      response = await fetch(request.url, { ...request.init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      const reason = (error as Error).name === "TimeoutError" ? `no answer in ${this.timeoutMs} ms` : "unreachable";
      throw new DisputeError("IPFS_FAILED", `IPFS ${this.label}: ${reason} fetching ${cid}: check the IPFS URL or start the node`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new DisputeError("IPFS_FAILED", `IPFS ${this.label} answered HTTP ${response.status} for ${cid}: is the batch file pinned there?`);
    }
    const bytes = await readLimited(response, this.maxBytes, cid, this.label);
    if ((await contentId(bytes)) !== cid) {
      throw new DisputeError(
        "IPFS_FAILED",
        `IPFS ${this.label} returned ${bytes.length} bytes for ${cid} that do not hash to it: refused (a wrong or lying gateway)`,
      );
    }
    return bytes;
  }
}

async function readLimited(response: Response, maxBytes: number, cid: string, label: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  if (reader === undefined) return new Uint8Array();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new DisputeError("IPFS_FAILED", `IPFS ${label}: ${cid} is larger than ${maxBytes} bytes: refused`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
