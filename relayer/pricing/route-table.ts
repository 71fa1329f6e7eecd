/**
 * Which route prices a LiteLLM call. A route matches when one of the call's model names (its model group, its
 * model as logged, or that model without the "provider/" prefix) equals the route's name, model or an alias
 * (case-insensitive), and the provider that served the call is one of the route's providers. Routes are tried
 * in file order. A model that matches but a provider that is not listed is a miss: we never bill a provider the
 * route does not name.
 */
import type { RouteConfig } from "../config/index.js";

/** "together_ai" -> "together-ai"; "OpenAI" -> "openai". */
export function normalizeProviderName(name: string): string {
  return name.trim().toLowerCase().replace(/_/g, "-");
}

const MAX_CACHED = 4096;

export interface CallIdentity {
  /** LiteLLM model_group (the name the client asked for) */
  readonly modelGroup: string | null;
  /** LiteLLM model, often "provider/model" */
  readonly model: string;
  /** LiteLLM custom_llm_provider */
  readonly litellmProvider: string | null;
}

export type RouteMatch =
  | { readonly ok: true; readonly route: RouteConfig; /** on-chain provider name, as the route writes it */ readonly provider: string }
  | { readonly ok: false; readonly detail: string };

export class RouteTable {
  private readonly aliases: ReadonlyMap<string, string>;
  private readonly names: ReadonlyArray<ReadonlySet<string>>;
  private readonly cache = new Map<string, RouteMatch>();

  constructor(
    readonly routes: readonly RouteConfig[],
    providerAliases: Readonly<Record<string, string>> = {},
  ) {
    this.aliases = new Map(Object.entries(providerAliases).map(([from, to]) => [from.trim().toLowerCase(), to]));
    this.names = routes.map((route) => new Set([route.name, route.model, ...route.aliases].map((name) => name.toLowerCase())));
  }

  /** The on-chain name LiteLLM's provider maps to: a provider_aliases entry, else the normalized name. */
  providerFor(litellmProvider: string): string {
    const key = litellmProvider.trim().toLowerCase();
    return normalizeProviderName(this.aliases.get(key) ?? key);
  }

  /** The route of a call; results are remembered per (model group, model, provider), a few thousand at most. */
  match(call: CallIdentity): RouteMatch {
    const cacheKey = `${call.modelGroup ?? ""}\u0000${call.model}\u0000${call.litellmProvider ?? ""}`;
    let found = this.cache.get(cacheKey);
    if (found === undefined) {
      found = this.resolve(call);
      if (this.cache.size < MAX_CACHED) this.cache.set(cacheKey, found);
    }
    return found;
  }

  private resolve(call: CallIdentity): RouteMatch {
    const provider = call.litellmProvider ?? providerPrefix(call.model);
    const callNames = modelNames(call);
    if (callNames.length === 0) return { ok: false, detail: "the log names no model (model and model_group are empty)" };
    const candidates = this.routes.filter((_, index) => callNames.some((name) => this.names[index]!.has(name)));
    const shown = `model_group=${call.modelGroup ?? "-"}, model=${call.model || "-"}`;
    if (candidates.length === 0) return { ok: false, detail: `no route for ${shown}` };
    if (provider === null) return { ok: false, detail: `the log names no provider (${shown})` };
    const wanted = this.providerFor(provider);
    for (const route of candidates) {
      const listed = route.providers.find((entry) => normalizeProviderName(entry.name) === wanted);
      if (listed !== undefined) return { ok: true, route, provider: listed.name };
    }
    return {
      ok: false,
      detail: `provider ${provider} (as ${wanted}) is not listed by route ${candidates.map((route) => route.name).join(", ")} for ${shown}`,
    };
  }
}

function providerPrefix(model: string): string | null {
  const slash = model.indexOf("/");
  return slash > 0 ? model.slice(0, slash) : null;
}

function modelNames(call: CallIdentity): string[] {
  const names = new Set<string>();
  const add = (name: string | null) => {
    if (name !== null && name.trim() !== "") names.add(name.trim().toLowerCase());
  };
  add(call.modelGroup);
  add(call.model);
  const slash = call.model.indexOf("/");
  if (slash > 0) add(call.model.slice(slash + 1));
  return [...names];
}
