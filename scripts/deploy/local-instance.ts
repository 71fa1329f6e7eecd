/**
 * A local node forgets everything when it restarts, but Ignition's journal of a deployment to it (chain 31337)
 * stays on disk and would make the next run believe the suite exists. Like `hardhat ignition deploy`, remember
 * which node instance a local deployment belongs to and start afresh when the node changed.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface RequestProvider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

/** Addresses recorded in a deployment directory that hold no code on the chain. */
export async function missingContracts(provider: RequestProvider, deploymentDir: string): Promise<string[]> {
  const file = join(deploymentDir, "deployed_addresses.json");
  if (!existsSync(file)) return [];
  const recorded = JSON.parse(await readFile(file, "utf8")) as Record<string, string>;
  const missing: string[] = [];
  for (const [futureId, address] of Object.entries(recorded)) {
    const code = (await provider.request({ method: "eth_getCode", params: [address, "latest"] })) as string;
    if (code === "0x") missing.push(`${futureId} ${address}`);
  }
  return missing;
}

/**
 * For a local node: removes `deploymentDir` when it was written against another node instance (or, with no record
 * of the instance, when its contracts are gone), and records the current instance in `instancesFile`. Returns
 * whether a stale deployment was removed.
 */
export async function forgetStaleLocalDeployment(
  provider: RequestProvider,
  deploymentDir: string,
  instancesFile: string,
): Promise<boolean> {
  let instanceId: string | undefined;
  try {
    ({ instanceId } = (await provider.request({ method: "hardhat_metadata" })) as { instanceId: string });
  } catch {
    instanceId = undefined; // not a Hardhat node (Anvil): only the code check applies
  }
  const instances: Record<string, string> = existsSync(instancesFile)
    ? (JSON.parse(await readFile(instancesFile, "utf8")) as Record<string, string>)
    : {};
  const known = instanceId === undefined ? undefined : instances[deploymentDir];
  const stale =
    existsSync(deploymentDir) &&
    (known !== undefined ? known !== instanceId : (await missingContracts(provider, deploymentDir)).length > 0);
  if (stale) await rm(deploymentDir, { recursive: true, force: true });
  if (instanceId !== undefined) {
    // Forget directories that no longer exist (temporary ones of tests).
    for (const dir of Object.keys(instances)) if (!existsSync(dir)) delete instances[dir];
    instances[deploymentDir] = instanceId;
    await mkdir(dirname(instancesFile), { recursive: true });
    await writeFile(instancesFile, `${JSON.stringify(instances, null, 2)}\n`);
  }
  return stale;
}
