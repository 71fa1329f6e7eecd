// The oldest Node.js the project runs on: 22.13 (Hardhat 3 and the relayer need what 22.13 brought; an older 22.x
// fails late and obscurely). One place: package.json's engines, .ci/node-floor and the README say the same.
export const NODE_FLOOR = "22.13.0";

/** True when `version` ("22.12.0" or "v22.12.0") is below NODE_FLOOR. */
export function nodeTooOld(version) {
  const parse = (text) => text.replace(/^v/, "").split(".").map((part) => Number.parseInt(part, 10) || 0);
  const [major, minor, patch] = parse(version);
  const [floorMajor, floorMinor, floorPatch] = parse(NODE_FLOOR);
  if (major !== floorMajor) return major < floorMajor;
  if (minor !== floorMinor) return minor < floorMinor;
  return patch < floorPatch;
}
