/** What the launcher adds to the environment of a long-running command (see malloc-tuning.mjs). */
export declare const MALLOC_SETTINGS: Readonly<Record<string, string>>;
/** Whether the command (its arguments after the script) runs the ingest server. */
export declare function isLongRunning(args: readonly string[]): boolean;
/** The environment to re-execute with, or null to run as is. */
export declare function mallocTuningEnv(args: readonly string[], env: Readonly<Record<string, string | undefined>>, platform: string): Record<string, string | undefined> | null;
