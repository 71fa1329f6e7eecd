export * from "./errors.js";
export * from "./keys.js";
export * from "./receipt.js";
export * from "./receipt-queue.js";
export * from "./receipt-store.js";
export * from "./receipt-worker.js";
export * from "./redis-connection.js";
export * from "./unbillable.js";
