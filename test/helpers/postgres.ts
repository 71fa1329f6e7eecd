/**
 * A real PostgreSQL for tests: the local server (PGTEST_URL, else postgresql://postgres@127.0.0.1:5432/test, trust
 * auth, as .ci/run sets it up), started with Debian's pg_ctlcluster when it does not answer. Each test gets a
 * database of its own, dropped after.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";

import pg from "pg";

export const PG_URL = process.env["PGTEST_URL"] ?? "postgresql://postgres@127.0.0.1:5432/test";

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

let ready: Promise<void> | undefined;

/** Resolves once PostgreSQL answers; starts Debian's cluster if it does not (throws with what to do otherwise). */
export function ensurePostgres(): Promise<void> {
  return (ready ??= (async () => {
    if (await answers(PG_URL)) return;
    let versions: string[] = [];
    try {
      versions = readdirSync("/etc/postgresql");
    } catch {
      // not Debian's packaging
    }
    if (versions.length === 0) throw new Error(`no PostgreSQL answers at ${PG_URL} and none is installed: run .ci/run, or apt-get install postgresql`);
    execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", versions[0]!, "main", "start"], { stdio: "ignore" });
    for (let i = 0; i < 50; i++) {
      if (await answers(PG_URL)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`PostgreSQL ${versions[0]} was started but does not answer at ${PG_URL}`);
  })());
}

export interface TestDatabase {
  /** postgresql:// URL of the test's own database */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** A fresh database of the test's own. */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  await ensurePostgres();
  const name = `agentgpt_${label}_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
