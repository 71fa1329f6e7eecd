/**
 * Finding a settled batch's file: the receipts archive (a folder or a bucket) first, else IPFS by the CID recorded on-chain. Either
 * way the bytes must hash to that CID, and the file must name this batch, chain and router; a file that does not is
 * refused with what to do instead.
 */
import { getAddress } from "ethers";

import type { Archive } from "../batcher/archive.js";
import { BatchFile } from "../batcher/batch-file.js";
import { contentId } from "../batcher/content-id.js";
import { DisputeError } from "./errors.js";
import type { IpfsClient } from "./ipfs.js";

export interface BatchFileSources {
  readonly archive?: Archive | undefined;
  /** the archive's chain folder (the relayer's chain name); default: every folder is searched */
  readonly archiveChain?: string | undefined;
  readonly ipfs?: IpfsClient | undefined;
}

export interface LoadedBatchFile {
  readonly file: BatchFile;
  readonly bytes: Uint8Array;
  readonly from: "archive" | "ipfs";
  /** the archive path, or `ipfs://<cid>` */
  readonly location: string;
}

export interface BatchIdentity {
  readonly batchId: string;
  readonly dataCid: string;
  readonly chainId: number;
  readonly router: string;
}

export async function loadBatchFile(sources: BatchFileSources, batch: BatchIdentity): Promise<LoadedBatchFile> {
  const archived = await readArchived(sources, batch.batchId);
  if (archived !== null) {
    if ((await contentId(archived.bytes)) !== batch.dataCid) {
      if (sources.ipfs === undefined) {
        throw new DisputeError(
          "BATCH_FILE_MISMATCH",
          `${archived.path} is not the file settled on-chain (its CID is not ${batch.dataCid}): restore it from a backup, ` +
            "or pass --ipfs <url> to fetch the original by its CID",
        );
      }
    } else {
      return { file: parse(archived.bytes, archived.path, batch), bytes: archived.bytes, from: "archive", location: archived.path };
    }
  }
  if (sources.ipfs === undefined) {
    const where =
      sources.archive === undefined
        ? "no archive was given"
        : sources.archiveChain === undefined && (await sources.archive.chains()).length === 0
          ? `not in the archive ${sources.archive.location}, which holds no batch file at all (if it does not exist: check --archive)`
          : `not in the archive ${sources.archive.location}`;
    throw new DisputeError(
      "BATCH_FILE_MISSING",
      `the batch file of ${batch.batchId} (CID ${batch.dataCid}) is ${where}: pass --archive <dir|s3://bucket/prefix> (the relayer's archive.dir or archive.s3) ` +
        "or --ipfs <url> (a gateway or Kubo node that has the CID)",
    );
  }
  const bytes = await sources.ipfs.fetch(batch.dataCid);
  return { file: parse(bytes, `ipfs://${batch.dataCid}`, batch), bytes, from: "ipfs", location: `ipfs://${batch.dataCid}` };
}

async function readArchived(sources: BatchFileSources, batchId: string): Promise<{ bytes: Uint8Array; path: string } | null> {
  const archive = sources.archive;
  if (archive === undefined) return null;
  const id = batchId.toLowerCase();
  const chains = sources.archiveChain !== undefined ? [sources.archiveChain] : await archive.chains();
  for (const chain of chains) {
    const bytes = await archive.readBytes(chain, id);
    if (bytes !== null) return { bytes, path: archive.locationOf(chain, id) };
  }
  return null;
}

function parse(bytes: Uint8Array, location: string, batch: BatchIdentity): BatchFile {
  let file: BatchFile;
  try {
    file = BatchFile.parse(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (error) {
    throw new DisputeError("BATCH_FILE_INVALID", `${location} is not a batch file (agentgpt-batch-v2): ${(error as Error).message.split("\n")[0]}`, {
      cause: error,
    });
  }
  const problems: string[] = [];
  if (file.batchId.toLowerCase() !== batch.batchId.toLowerCase()) problems.push(`batch ${file.batchId}`);
  if (file.chainId !== batch.chainId) problems.push(`chain ${file.chainId}`);
  if (getAddress(file.router) !== getAddress(batch.router)) problems.push(`router ${file.router}`);
  if (problems.length > 0) {
    throw new DisputeError(
      "BATCH_FILE_MISMATCH",
      `${location} belongs to ${problems.join(", ")}, not batch ${batch.batchId} on chain ${batch.chainId} (router ${batch.router})`,
    );
  }
  return file;
}
