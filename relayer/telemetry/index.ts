export * from "./listener.js";
export * from "./process-telemetry.js";
export * from "./readiness.js";
export * from "./routes.js";
export * from "./within.js";
