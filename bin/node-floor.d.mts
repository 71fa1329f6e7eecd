/** The oldest Node.js the project runs on. */
export declare const NODE_FLOOR: string;
/** True when `version` ("22.12.0" or "v22.12.0") is below NODE_FLOOR. */
export declare function nodeTooOld(version: string): boolean;
