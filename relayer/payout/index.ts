export * from "./errors.js";
export * from "./escrow-scan.js";
export * from "./payout-client.js";
