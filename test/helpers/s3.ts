/**
 * A real S3-compatible server for tests: s3rver (npm, devDependency) on 127.0.0.1 and a free port, in this
 * process, its objects in a temporary folder. It checks the access key id (S3RVER) but not the SigV4 signature,
 * and ignores If-None-Match on PutObject (see relayer/batcher/s3-archive.ts for what the archive does about it).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import S3rver from "s3rver";

/** s3rver's one account */
export const S3_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface TestS3 {
  readonly endpoint: string;
  /** buckets created at start */
  readonly buckets: readonly string[];
  /** the folder holding the objects */
  readonly dir: string;
  close(): Promise<void>;
}

export async function startS3(buckets: readonly string[] = ["agentgpt-archive"]): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), "agentgpt-s3rver-"));
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    buckets,
    dir,
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
