// Entry of a parse worker thread (see parse-pool.ts). The relayer runs its TypeScript through tsx, whose loader
// must be registered in each thread, so this small JavaScript file does that and then loads the worker proper.
import { register } from "tsx/esm/api";

register();
await import("./parse-worker-main.ts");
