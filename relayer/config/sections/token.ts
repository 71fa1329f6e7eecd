/**
 * `token:` the settlement token. Defaults to AGPT with 18 decimals (contracts/AGPTToken.sol).
 *
 * ```yaml
 * token:
 *   symbol: AGPT     # amounts in this file are written in it: "500 AGPT"
 *   decimals: 18
 * ```
 */
import { z } from "zod";

import type { TokenUnit } from "../amount.js";

export const tokenSection = () =>
  z
    .strictObject({
      symbol: z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,10}$/, "a token symbol is letters and digits (e.g. AGPT)").default("AGPT"),
      decimals: z.int().min(0).max(36).default(18),
    })
    .prefault({})
    .transform((token): TokenUnit => ({ symbol: token.symbol, decimals: token.decimals }));
