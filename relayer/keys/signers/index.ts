// aws-kms.js is not re-exported: it loads the AWS SDK (about 0.3 s); load-signer imports it when a KMS signer is configured
export * from "./device-signer.js";
export * from "./ecdsa.js";
export * from "./errors.js";
export * from "./load-signer.js";
export * from "./pkcs11.js";
