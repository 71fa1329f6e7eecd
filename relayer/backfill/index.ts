export * from "./backfill.js";
export * from "./coverage.js";
export * from "./metrics.js";
export * from "./errors.js";
export * from "./pg-source.js";
export * from "./spend-record.js";
export * from "./stage.js";
