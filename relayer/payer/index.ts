export * from "./errors.js";
export * from "./payer-client.js";
