/**
 * The LiteLLM proxy `config.yaml` that points LiteLLM's generic API logger at this relayer (`agentgpt litellm
 * config`). The bearer token is not written into the file unless asked: LiteLLM reads it from its environment,
 * `GENERIC_LOGGER_HEADERS="Authorization=Bearer <token>"`, which it merges with the headers below (a
 * callback_settings entry without `headers` is skipped by LiteLLM, hence the harmless one).
 */
import { stringify } from "yaml";

import type { RelayerConfig } from "../config/index.js";
import { normalizeProviderName } from "../pricing/index.js";
import { SPEND_PATH } from "./server.js";
import { LITELLM_FIELDS_NOT_READ } from "./spend-log.js";

export type LogFormat = "json_array" | "ndjson" | "single";

export interface LiteLLMConfigOptions {
  /** where LiteLLM posts, e.g. http://relayer:8787/litellm/spend */
  readonly endpoint: string;
  readonly logFormat: LogFormat;
  /** logs per POST (LiteLLM default 512) */
  readonly batchSize: number;
  /** seconds between flushes (LiteLLM default 5) */
  readonly flushInterval: number;
  /** the callback_settings entry name */
  readonly callbackName: string;
  /** write this token into the file (it is then a secret file) */
  readonly inlineToken?: string | undefined;
  /** emit a model_list with one deployment per route provider */
  readonly includeModels: boolean;
}

export const DEFAULT_CALLBACK_NAME = "agentgpt_billing";

/**
 * What the generated config was checked against: LiteLLM's own source and documentation, read for this project
 * (no LiteLLM release number could be pinned from them here; see README "Ingest").
 */
export const LITELLM_CHECKED = [
  "litellm/integrations/generic_api/generic_api_callback.py at 0cc07bab (async_send_batch posts once and clears its queue whatever the answer)",
  "schema.prisma at 029f645f (LiteLLM_SpendLogs) and proxy/spend_tracking/spend_tracking_utils.py at 00907c60 (request_id = the log's id)",
  "docs.litellm.ai/docs/observability/generic_api (litellm_settings.callbacks + callback_settings, updated 2026-10-01)",
] as const;

/** The endpoint LiteLLM should post to, from server.host/port (a wildcard host becomes 127.0.0.1). */
export function defaultEndpoint(config: RelayerConfig | undefined): string {
  const host = config?.server.host ?? "127.0.0.1";
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return `http://${shown}:${config?.server.port ?? 8787}${SPEND_PATH}`;
}

/** LiteLLM's provider prefix for an on-chain provider name: a provider_aliases entry reversed, else "-" -> "_". */
function litellmProviderOf(provider: string, config: RelayerConfig): string {
  for (const [litellm, onChain] of Object.entries(config.providerAliases)) {
    if (normalizeProviderName(onChain) === normalizeProviderName(provider)) return litellm;
  }
  return provider.replace(/-/g, "_");
}

function modelList(config: RelayerConfig): unknown[] {
  return config.routes.flatMap((route) =>
    route.providers.map((provider) => {
      const litellm = litellmProviderOf(provider.name, config);
      return {
        model_name: route.model,
        litellm_params: {
          model: `${litellm}/${route.model}`,
          api_key: `os.environ/${litellm.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_API_KEY`,
        },
        model_info: { description: `agentgpt route ${route.name}, provider ${provider.name}${provider.deployment === undefined ? "" : `@${provider.deployment}`}` },
      };
    }),
  );
}

export function liteLLMProxyConfig(config: RelayerConfig | undefined, options: LiteLLMConfigOptions): string {
  const document: Record<string, unknown> = {};
  if (options.includeModels && config !== undefined && config.routes.length > 0) document["model_list"] = modelList(config);
  document["litellm_settings"] = {
    // The callback_settings entry below is only a definition: LiteLLM creates the logger for the names listed here.
    callbacks: [options.callbackName],
    // Prompts and responses are not needed for billing: keep them out of the logs (privacy, and smaller POSTs).
    turn_off_message_logging: true,
    // Nor are the cost map, hidden params and the rest: each log shrinks from about 6 KB to 2 KB.
    standard_logging_payload_excluded_fields: [...LITELLM_FIELDS_NOT_READ],
  };
  document["callback_settings"] = {
    [options.callbackName]: {
      callback_type: "generic_api",
      endpoint: options.endpoint,
      headers: options.inlineToken === undefined ? { "X-AgentGPT-Client": "litellm-proxy" } : { Authorization: `Bearer ${options.inlineToken}` },
      event_types: ["llm_api_success", "llm_api_failure"],
      log_format: options.logFormat,
      batch_size: options.batchSize,
      flush_interval: options.flushInterval,
    },
  };
  // LiteLLM's own spend records (LiteLLM_SpendLogs in its database) are what the relayer's backfill reads to recover
  // the batches the logger dropped: keep them written, and kept longer than the backfill's lookback.
  document["general_settings"] = { disable_spend_logs: false };
  const header = [
    "LiteLLM proxy config generated by `agentgpt litellm config`: LiteLLM posts every call's usage to the relayer.",
    ...(options.inlineToken === undefined
      ? [
          "The relayer's bearer token goes in LiteLLM's environment (LiteLLM adds it to the headers below):",
          '  export GENERIC_LOGGER_HEADERS="Authorization=Bearer <a token from AGENTGPT_INGEST_TOKENS>"',
        ]
      : ["This file contains the relayer's bearer token: keep it private."]),
    "Billing completeness: LiteLLM's generic API logger posts each batch once and drops it on any error (a 503 while the",
    "relayer restarts, a network fault); it never sends it again. The relayer recovers those calls from LiteLLM's own spend",
    "records (LiteLLM_SpendLogs): keep general_settings.disable_spend_logs false, keep the records (maximum_spend_logs_retention_period)",
    "longer than the relayer's backfill.lookback, and give the relayer read access (backfill: section, or agentgpt litellm backfill).",
    "Leave litellm.generic_api_use_v1 off (the relayer reads StandardLoggingPayload), and keep both event types.",
    `Checked against LiteLLM's source and docs: ${LITELLM_CHECKED.join("; ")}.`,
    "litellm_settings apply to every LiteLLM logger: drop the two exclusions if another one needs prompts, responses or the cost map.",
    "(LiteLLM versions without standard_logging_payload_excluded_fields ignore it and send whole logs.)",
    "Merge general_settings into yours (it must also hold LiteLLM's database_url / DATABASE_URL for spend records to be written).",
    "Older LiteLLM versions without callback_settings: litellm_settings.callbacks: [\"generic_api\"] with",
    `  GENERIC_LOGGER_ENDPOINT=${options.endpoint} and the GENERIC_LOGGER_HEADERS above.`,
    ...(document["model_list"] === undefined ? [] : ["model_list: one deployment per route provider; check each provider's model id and key variable."]),
  ];
  return `${header.map((line) => `# ${line}`).join("\n")}\n${stringify(document, { lineWidth: 0 })}`;
}
