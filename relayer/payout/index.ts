export * from "./errors.js";
export * from "./escrow-scan.js";
export * from "./payout-client.js";
export * from "./release-schedule.js";
export * from "./release-stage.js";
