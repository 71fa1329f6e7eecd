export * from "./actions.js";
export * from "./errors.js";
export * from "./governance-client.js";
export * from "./proposal.js";
export * from "./proposal-status.js";
export * from "./dry-run.js";
export * from "./settings.js";
