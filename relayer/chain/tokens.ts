/**
 * The suite's token units. Amount text ("500 AGPT", "0.12 AGPT/1k tokens") is parsed and formatted by
 * relayer/config/amount.ts, the project's one exact parser; this file only names AGPT's unit.
 */
import type { TokenUnit } from "../config/amount.js";

export type { TokenUnit };

/** AGPTToken: symbol AGPT, 18 decimals. */
export const AGPT_UNIT: TokenUnit = { symbol: "AGPT", decimals: 18 };
