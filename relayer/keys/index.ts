export * from "./config-keys.js";
export * from "./errors.js";
export * from "./key-status.js";
export * from "./keystore.js";
export * from "./password.js";
export * from "./rotation.js";
export * from "./signers/index.js";
