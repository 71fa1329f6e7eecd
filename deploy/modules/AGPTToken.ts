/**
 * Ignition module `AGPTToken`: the AgentGPT token, the suite's votes token and, unless the deployment settles in an
 * existing ERC-20 (`AutoPayLLM.paymentToken`), its payment token.
 *
 * Parameters:
 * - `holder` (address, default: the deployer): receives the whole fixed supply. scripts/deploy.ts leaves it to the
 *   deployer, which hands the supply out as `AGPTToken.allocations` says (module AGPTAllocations).
 * - `initialSupply` (token units, 18 decimals; default 100,000,000 AGPT).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/** 100,000,000 AGPT in token units. */
export const DEFAULT_INITIAL_SUPPLY = 100_000_000n * 10n ** 18n;

export default buildModule("AGPTToken", (m) => {
  const holder = m.getParameter("holder", m.getAccount(0));
  const initialSupply = m.getParameter("initialSupply", DEFAULT_INITIAL_SUPPLY);
  const agpt = m.contract("AGPTToken", [holder, initialSupply]);
  return { agpt };
});
