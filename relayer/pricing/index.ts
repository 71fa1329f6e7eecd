export * from "./price.js";
export * from "./pricer.js";
export * from "./route-table.js";
export * from "./settlement-chain.js";
