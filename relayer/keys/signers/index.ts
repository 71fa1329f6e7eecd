export * from "./aws-kms.js";
export * from "./device-signer.js";
export * from "./ecdsa.js";
export * from "./errors.js";
export * from "./load-signer.js";
export * from "./pkcs11.js";
