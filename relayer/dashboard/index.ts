export * from "./access.js";
export * from "./links.js";
export * from "./server.js";
export * from "./stage.js";
