/** Asserting that no secret leaks into what a command prints or logs. */
import { expect } from "chai";

import type { Run } from "../backup/helpers.js";

/** Fails when any run's output (or an extra text, e.g. a log) holds one of `secrets`: as given, lowercase, or without 0x. */
export function expectNoSecrets(runs: readonly Run[], secrets: readonly string[], extra: readonly string[] = []): void {
  const texts = [...runs.flatMap((run) => [run.stdout, run.stderr]), ...extra];
  for (const secret of secrets) {
    const forms = new Set([secret, secret.toLowerCase(), secret.replace(/^0x/, ""), secret.replace(/^0x/, "").toLowerCase()]);
    for (const text of texts) for (const form of forms) expect(text.includes(form), `a secret appears in the output:\n${text.slice(0, 400)}`).to.equal(false);
  }
}
