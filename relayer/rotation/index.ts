export * from "./key-factory.js";
export * from "./key-follower.js";
export * from "./pkcs11-key-factory.js";
export * from "./key-ring.js";
export * from "./rotation-stage.js";
export * from "./rotator-chain.js";
export * from "./setup.js";
export * from "./revoke.js";
