/**
 * The settlement stages: `archive:` (batch files), `batcher:` (when a batch closes) and `settler:` (how batches are
 * sent: signer, fees, timing). Per-chain settings (router address, signer, fees, replacement strategy) live under
 * each chain in `chains:` and override `settler:`.
 *
 * ```yaml
 * archive:
 *   dir: ./.archive                # one JSON file per batch, written before anything is sent; default ./.archive
 *   # ...or, for a fleet (batcher and settler on different hosts), an S3 bucket or S3-compatible store instead:
 *   # s3:
 *   #   bucket: agentgpt-archive     # required; it must exist
 *   #   prefix: prod/                # key prefix (default none): keys are <prefix><chain>/<batchId>.json
 *   #   region: eu-central-1         # default AWS_REGION / the shared config; us-east-1 with an endpoint
 *   #   endpoint: http://minio:9000  # an S3-compatible store (MinIO, Ceph RGW...); default AWS
 *   #   force_path_style: true       # http://host/bucket/key; default true with an endpoint, false without
 *   #   max_attempts: 5              # per request, with the SDK's backoff (default 5)
 *   # Credentials come from the AWS default chain (environment, AWS_PROFILE, instance role), never from this file.
 * batcher:
 *   max_receipts: 2000             # close a batch at this many receipts (default 2000, at most 20000)
 *   max_wait: 5s                   # ... or when its oldest receipt has waited this long (default 5s)
 *   known_grace: 1h                # how long a batch's receipt ids stay in the chain's Redis slot once copied to
 *                                  # the spread long tier (default 1h; must exceed the lease takeover, lease_ttl +
 *                                  # lease_ttl / 3; see relayer/batcher/batch-pool.ts)
 * settler:
 *   signer:                        # an encrypted JSON keystore, decrypted at start and on each SIGHUP...
 *     keystore: ./keys/relayer.json
 *     password_env: AGENTGPT_KEYSTORE_PASSWORD   # variable holding its password (default shown)...
 *   #  password_file: ./keys/relayer.password    # ...or a file holding it (one line, mode 0600): read again on
 *   #                                            # every SIGHUP, so a rotation to a key with another password
 *   #                                            # needs no restart (a variable is fixed when the process starts)
 *   # ...or, for development only, a raw key in an environment variable:
 *   #  key_env: AGENTGPT_RELAYER_KEY
 *   # ...or a key inside an HSM, through its PKCS#11 module (the key never leaves the token):
 *   #  kind: pkcs11
 *   #  module: /usr/lib/softhsm/libsofthsm2.so   # the vendor's PKCS#11 library
 *   #  token: relayer                 # the token's label (or slot: <slot id>)
 *   #  key_label: relayer-1           # the key's CKA_LABEL (or key_id: "0x01a2...", its CKA_ID in quotes, or both)
 *   #  pin_env: AGENTGPT_PKCS11_PIN   # variable holding the user PIN (default shown), or pin_file: <file>
 *   # ...or an AWS KMS key of spec ECC_SECG_P256K1 (credentials: the AWS SDK's default chain):
 *   #  kind: aws_kms
 *   #  key_id: arn:aws:kms:eu-west-1:111122223333:key/...   # id, ARN or alias/...
 *   #  region: eu-west-1              # default: AWS_REGION / the shared config
 *   #  endpoint: https://kms.eu-west-1.amazonaws.com       # optional (a VPC endpoint)
 *   # During a key rotation (`agentgpt keys rotate`), the key being replaced: it only finishes the batches it
 *   # signed; new batches are signed with the key above. Remove it once `keys rotate` says the rotation is done.
 *   #  retiring: { keystore: ./keys/relayer-old.json, password_env: AGENTGPT_OLD_KEYSTORE_PASSWORD }  (or password_file:)
 *   fees:
 *     max_fee: 50 gwei             # never offer more per gas (default 50 gwei)
 *     min_priority_fee: 0.01 gwei  # tip floor (default 0.01 gwei)
 *     bump_percent: 12.5           # replacement raise of both fees, at least 10 (default 12.5)
 *   stuck_after: 30s               # replace a transaction not mined after this long (default 30s)
 *   max_in_flight: 4               # batches signed or sent at once per chain (default 4)
 *   poll: 1s                       # ledger pass interval (default 1s)
 *   lease_ttl: 15s                 # the per-chain leases of the settler, batcher and reconciler (default 15s): a
 *                                  # holder renews every lease_ttl / 3; a standby takes over within lease_ttl +
 *                                  # lease_ttl / 3 (20 s by default) of the holder's last renewal
 *   rotation:                      # automatic key rotation through the RelayerKeyRotator (off without it)
 *     every: 24h                   # create a new key and switch to it this often (at least 1s; 24h in production)
 *     key: keystore                # what creates the new key: "keystore" (an encrypted keystore written by the
 *                                  # relayer) or "pkcs11" (a key generated inside an HSM token; see below)
 *     keys_dir: ./keys/rotated     # key: keystore: where created keystores are written (0600 in a 0700 directory)
 *     password_file: ./keys/rotated.password   # key: keystore: password of the created keystores (or password_env:)
 *   # key: pkcs11 instead: each new key is generated inside the token (sensitive, never extractable) and found again
 *   # by its label and CKA_ID after a restart; keys_dir / password_* are then not allowed
 *   #  pkcs11:
 *   #    module: /usr/lib/softhsm/libsofthsm2.so   # the vendor's PKCS#11 library
 *   #    token: relayer               # the token's label (or slot: <slot id>)
 *   #    pin_file: ./keys/hsm.pin     # the user PIN (or pin_env:, default AGENTGPT_PKCS11_PIN)
 *   #    label_prefix: agentgpt-relayer-   # created keys are labelled <prefix><time>-<random> (default shown)
 *   # (key: aws_kms is refused: KMS keys are created by the operator, rotation with KMS keys is not supported yet)
 *     rotator: { keystore: ./keys/rotator.json, password_file: ./keys/rotator.password }   # the ROTATOR key
 *     fund: 0.05 ETH               # gas the rotator key sends each new key before it is authorized (default 0)
 *     poll: 2s                     # how often the rotation stage looks (default 2s)
 *     lease_ttl: 15s               # the one rotating process's lease (default 15s)
 *   min_signer_balance: 0.05       # /readyz fails while the signer holds no more than this, in the chain's native
 *                                  # coin (ETH on Arbitrum, POL on Polygon); default 0: an empty signer is not ready
 * ```
 */
import { parseUnits } from "ethers";
import { z } from "zod";

import { durationMs } from "./fields.js";

/** Where the settler's key lives: an encrypted keystore (or a development key), an HSM through PKCS#11, AWS KMS. */
export type SignerKind = "keystore" | "pkcs11" | "aws_kms";

export interface Pkcs11SignerConfig {
  /** the vendor's PKCS#11 library (relative paths are relative to the config file) */
  readonly module: string;
  /** the token's label, or... */
  readonly token?: string | undefined;
  /** ...its slot id */
  readonly slot?: number | undefined;
  /** the key's CKA_LABEL and/or CKA_ID (hex) */
  readonly keyLabel?: string | undefined;
  readonly keyId?: string | undefined;
  /** variable holding the user PIN (default AGENTGPT_PKCS11_PIN), unless pinFile */
  readonly pinEnv: string;
  /** a file holding the user PIN (one line), read at start and on each reload */
  readonly pinFile?: string | undefined;
}

export interface AwsKmsSignerConfig {
  /** key id, key ARN, alias/... or alias ARN */
  readonly keyId: string;
  readonly region?: string | undefined;
  readonly endpoint?: string | undefined;
}

export interface SignerConfig {
  /** absent: keystore (or key_env), as before signer kinds existed */
  readonly kind?: SignerKind | undefined;
  /** kind pkcs11 */
  readonly pkcs11?: Pkcs11SignerConfig | undefined;
  /** kind aws_kms */
  readonly awsKms?: AwsKmsSignerConfig | undefined;
  readonly keystore?: string | undefined;
  readonly passwordEnv: string;
  /** a file holding the keystore's password (relative to the config file); read at start and on each reload */
  readonly passwordFile?: string | undefined;
  readonly keyEnv?: string | undefined;
  /** the key being rotated out: finishes its own in-flight transactions, signs nothing new */
  readonly retiring?: Omit<SignerConfig, "retiring"> | undefined;
}

export interface FeeConfig {
  readonly maxFeePerGas: bigint;
  readonly minPriorityFeePerGas: bigint;
  readonly bumpPercent: number;
}

export interface S3ArchiveConfig {
  readonly bucket: string;
  readonly prefix: string;
  readonly region?: string | undefined;
  readonly endpoint?: string | undefined;
  readonly forcePathStyle?: boolean | undefined;
  readonly maxAttempts: number;
}

/** The local folder `dir` (the default), or `s3` (then `dir` is absent). */
export type ArchiveConfig = { readonly dir: string; readonly s3?: undefined } | { readonly dir?: undefined; readonly s3: S3ArchiveConfig };

export interface BatcherConfig {
  readonly maxReceipts: number;
  readonly maxWaitMs: number;
  /** G: how long a batch's receipt ids stay in the chain's slot after they were copied to the long tier (batch-pool.ts) */
  readonly knownGraceMs: number;
}

/** `settler.rotation.pkcs11`: where a rotation generates its keys (each key's label and id go to the key ring). */
export interface RotationPkcs11Config {
  /** the vendor's PKCS#11 library (relative paths are relative to the config file) */
  readonly module: string;
  /** the token's label, or... */
  readonly token?: string | undefined;
  /** ...its slot id */
  readonly slot?: number | undefined;
  /** variable holding the user PIN (default AGENTGPT_PKCS11_PIN), unless pinFile */
  readonly pinEnv: string;
  /** a file holding the user PIN (one line), read each time a key is created or opened */
  readonly pinFile?: string | undefined;
  /** created keys are labelled `<labelPrefix><time>-<random>` */
  readonly labelPrefix: string;
}

/** `settler.rotation`: scheduled key rotation through the RelayerKeyRotator contract (relayer/rotation). */
export interface RotationConfig {
  /** ms between rotations */
  readonly everyMs: number;
  /** what creates new keys: an encrypted keystore, or a key generated inside a PKCS#11 token */
  readonly key: "keystore" | "pkcs11";
  /** key "pkcs11": the token the new keys are generated in */
  readonly pkcs11?: RotationPkcs11Config | undefined;
  /** key "keystore": directory the created keystores go to (relative to the config file) */
  readonly keysDir: string;
  /** the created keystores' password: from this variable... */
  readonly passwordEnv: string;
  /** ...or this file (read each time a key is created or opened) */
  readonly passwordFile?: string | undefined;
  /** the ROTATOR key that signs addKey / revokeKey */
  readonly rotator: Omit<SignerConfig, "retiring">;
  /** wei the rotator key sends each new key for gas */
  readonly fundWei: bigint;
  readonly pollMs: number;
  readonly leaseTtlMs: number;
}

export interface SettlerConfig {
  readonly signer?: SignerConfig | undefined;
  /** absent: no scheduled rotation (`agentgpt keys rotate` by hand, and `keys revoke` is unavailable) */
  readonly rotation?: RotationConfig | undefined;
  readonly fees: FeeConfig;
  readonly stuckAfterMs: number;
  readonly maxInFlight: number;
  readonly pollMs: number;
  readonly leaseTtlMs: number;
  /** wei: the settler is not ready while its signer's balance is at or below this (chains.<name>.min_signer_balance overrides) */
  readonly minSignerBalance: bigint;
}

/** "50 gwei" | "0.01 gwei" | "1000000 wei" | a number of gwei -> wei */
export const gasPrice = () =>
  z.unknown().transform((value, ctx): bigint => {
    const text = typeof value === "number" ? `${value} gwei` : typeof value === "string" ? value.trim() : "";
    const match = /^(\d+(?:\.\d+)?)\s*(gwei|wei)$/i.exec(text);
    if (match === null) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not a gas price; write e.g. "50 gwei" or "0.01 gwei"`, input: value });
      return z.NEVER;
    }
    try {
      return parseUnits(match[1]!, match[2]!.toLowerCase() === "gwei" ? 9 : 0);
    } catch {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)}: at most 9 decimals of gwei, whole wei`, input: value });
      return z.NEVER;
    }
  });

/**
 * An amount of a chain's native coin (ETH on Arbitrum, POL on Polygon) -> wei: a plain number is whole coins
 * (0.05, "0.05"), or with a unit: "0.05 ETH", "0.05 POL", "50000000 gwei", "1000 wei".
 */
export const nativeAmount = () =>
  z.unknown().transform((value, ctx): bigint => {
    const text = typeof value === "number" ? String(value) : typeof value === "string" ? value.trim() : "";
    const match = /^(\d+(?:\.\d+)?)(?:\s*(eth|pol|matic|gwei|wei))?$/i.exec(text);
    if (match === null) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not an amount of the chain's native coin; write e.g. 0.05 or "0.05 ETH" (or gwei, wei)`, input: value });
      return z.NEVER;
    }
    const unit = (match[2] ?? "eth").toLowerCase();
    const decimals = unit === "gwei" ? 9 : unit === "wei" ? 0 : 18;
    try {
      return parseUnits(match[1]!, decimals);
    } catch {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)}: too many decimals for ${unit}`, input: value });
      return z.NEVER;
    }
  });

const envName = () => z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name (e.g. AGENTGPT_KEYSTORE_PASSWORD)");

const DEFAULT_PASSWORD_ENV = "AGENTGPT_KEYSTORE_PASSWORD";
export const DEFAULT_PIN_ENV = "AGENTGPT_PKCS11_PIN";
const keyFields = {
  kind: z.enum(["keystore", "pkcs11", "aws_kms"]).optional(),
  keystore: z.string().min(1).optional(),
  password_env: envName().optional(),
  password_file: z.string().min(1).optional(),
  key_env: envName().optional(),
  // pkcs11
  module: z.string().min(1).optional(),
  token: z.string().min(1).max(32).optional(),
  slot: z.int().min(0).optional(),
  key_label: z.string().min(1).optional(),
  key_id: z.string({ error: 'write it in quotes, e.g. key_id: "0x01ab" (unquoted, YAML reads 0x... as a number)' }).min(1).optional(),
  pin_env: envName().optional(),
  pin_file: z.string().min(1).optional(),
  // aws_kms
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "an AWS region such as eu-west-1").optional(),
  endpoint: z.url().optional(),
};
type KeyFields = {
  kind?: SignerKind | undefined;
  keystore?: string | undefined;
  password_env?: string | undefined;
  password_file?: string | undefined;
  key_env?: string | undefined;
  module?: string | undefined;
  token?: string | undefined;
  slot?: number | undefined;
  key_label?: string | undefined;
  key_id?: string | undefined;
  pin_env?: string | undefined;
  pin_file?: string | undefined;
  region?: string | undefined;
  endpoint?: string | undefined;
};

const KIND_FIELDS: Record<SignerKind, readonly (keyof KeyFields)[]> = {
  keystore: ["keystore", "password_env", "password_file", "key_env"],
  pkcs11: ["module", "token", "slot", "key_label", "key_id", "pin_env", "pin_file"],
  aws_kms: ["key_id", "region", "endpoint"],
};
const ALL_KEY_FIELDS = [...new Set(Object.values(KIND_FIELDS).flat())];

/** Each kind's required fields and no field of another kind; issues name the field and the fix. */
function checkKey(s: KeyFields, ctx: z.RefinementCtx): void {
  const kind = s.kind ?? "keystore";
  for (const field of ALL_KEY_FIELDS) {
    if (s[field] !== undefined && !KIND_FIELDS[kind].includes(field)) {
      ctx.addIssue({ code: "custom", path: [field], message: `${field}: is not a setting of a ${kind} signer (kind: ${kind}${s.kind === undefined ? ", the default" : ""}): remove it or set kind:` });
    }
  }
  if (kind === "keystore") {
    if ((s.keystore === undefined) === (s.key_env === undefined)) {
      ctx.addIssue({ code: "custom", path: [], message: "give either keystore: (an encrypted JSON keystore) or key_env: (development only), not both or neither; or kind: pkcs11 / aws_kms" });
    }
    if (s.password_env !== undefined && s.password_file !== undefined) {
      ctx.addIssue({ code: "custom", path: ["password_file"], message: "give the keystore's password either by password_env: (a variable) or by password_file: (a file), not both" });
    }
  } else if (kind === "pkcs11") {
    if (s.module === undefined) ctx.addIssue({ code: "custom", path: ["module"], message: "module: the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so" });
    if ((s.token === undefined) === (s.slot === undefined)) ctx.addIssue({ code: "custom", path: ["token"], message: "give the token either by token: (its label) or by slot: (its slot id), not both or neither" });
    if (s.key_label === undefined && s.key_id === undefined) ctx.addIssue({ code: "custom", path: ["key_label"], message: "key_label: (the key's label) or key_id: (its CKA_ID in hex): which key on the token signs" });
    if (s.key_id !== undefined && !/^(0x)?([0-9a-fA-F]{2})+$/.test(s.key_id)) ctx.addIssue({ code: "custom", path: ["key_id"], message: "key_id: the key's CKA_ID in hex, e.g. 0x01a2b3" });
    if (s.pin_env !== undefined && s.pin_file !== undefined) ctx.addIssue({ code: "custom", path: ["pin_file"], message: "give the user PIN either by pin_env: (a variable) or by pin_file: (a file), not both" });
  } else if (s.key_id === undefined) {
    ctx.addIssue({ code: "custom", path: ["key_id"], message: "key_id: the KMS key (id, ARN or alias/...), an ECC_SECG_P256K1 key with usage SIGN_VERIFY" });
  }
}

const keyOf = (s: KeyFields): Omit<SignerConfig, "retiring"> => {
  const kind = s.kind ?? "keystore";
  if (kind === "pkcs11") {
    return {
      kind,
      passwordEnv: DEFAULT_PASSWORD_ENV,
      pkcs11: {
        module: s.module!,
        token: s.token,
        slot: s.slot,
        keyLabel: s.key_label,
        keyId: s.key_id,
        pinEnv: s.pin_env ?? DEFAULT_PIN_ENV,
        ...(s.pin_file === undefined ? {} : { pinFile: s.pin_file }),
      },
    };
  }
  if (kind === "aws_kms") return { kind, passwordEnv: DEFAULT_PASSWORD_ENV, awsKms: { keyId: s.key_id!, region: s.region, endpoint: s.endpoint } };
  return {
    ...(s.kind === undefined ? {} : { kind }),
    keystore: s.keystore,
    passwordEnv: s.password_env ?? DEFAULT_PASSWORD_ENV,
    ...(s.password_file === undefined ? {} : { passwordFile: s.password_file }),
    keyEnv: s.key_env,
  };
};

/** The same key named twice (the signer and its retiring key). */
function sameKey(a: KeyFields, b: KeyFields): boolean {
  const kind = a.kind ?? "keystore";
  if (kind !== (b.kind ?? "keystore")) return false;
  if (kind === "keystore") return a.keystore !== undefined && a.keystore === b.keystore;
  if (kind === "aws_kms") return a.key_id === b.key_id && a.region === b.region;
  return a.module === b.module && a.token === b.token && a.slot === b.slot && a.key_label === b.key_label && a.key_id === b.key_id;
}

export const signerSection = () =>
  z
    .strictObject({ ...keyFields, retiring: z.strictObject(keyFields).superRefine(checkKey).optional() })
    .superRefine(checkKey)
    .refine((s) => s.retiring === undefined || !sameKey(s, s.retiring), {
      message: "retiring: is the key being replaced; it cannot be the same key as the signer",
      path: ["retiring"],
    })
    .transform((s): SignerConfig => ({ ...keyOf(s), retiring: s.retiring === undefined ? undefined : keyOf(s.retiring) }));

const feeFields = {
  max_fee: gasPrice().optional(),
  min_priority_fee: gasPrice().optional(),
  bump_percent: z.number().min(10, "replacements must raise fees by at least 10%").max(500).optional(),
};

export const feesSection = () => z.strictObject(feeFields);
export type FeeOverrides = z.output<ReturnType<typeof feesSection>>;

export function resolveFees(base: FeeConfig, overrides: FeeOverrides | undefined): FeeConfig {
  return {
    maxFeePerGas: overrides?.max_fee ?? base.maxFeePerGas,
    minPriorityFeePerGas: overrides?.min_priority_fee ?? base.minPriorityFeePerGas,
    bumpPercent: overrides?.bump_percent ?? base.bumpPercent,
  };
}

const s3ArchiveSection = () =>
  z
    .strictObject({
      bucket: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3 to 63 lowercase letters, digits, "." and "-" (e.g. "agentgpt-archive")'),
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9!_.*'()\/-]*$/, 'a key prefix of letters, digits and "/ ! - _ . * \' ( )" (e.g. "prod/archive/")')
        .default(""),
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "an AWS region, e.g. eu-central-1").optional(),
      endpoint: z
        .url({ protocol: /^https?$/, error: "an http(s) URL of an S3-compatible endpoint, e.g. http://127.0.0.1:9000" })
        .optional(),
      force_path_style: z.boolean().optional(),
      max_attempts: z.int().min(1).max(20).default(5),
    })
    .transform(
      (s): S3ArchiveConfig => ({
        bucket: s.bucket,
        prefix: s.prefix === "" || s.prefix.endsWith("/") ? s.prefix.replace(/^\/+/, "") : `${s.prefix.replace(/^\/+/, "")}/`,
        region: s.region,
        endpoint: s.endpoint,
        forcePathStyle: s.force_path_style,
        maxAttempts: s.max_attempts,
      }),
    );

export const archiveSection = () =>
  z
    .strictObject({ dir: z.string().min(1).optional(), s3: s3ArchiveSection().optional() })
    .prefault({})
    .refine((a) => a.dir === undefined || a.s3 === undefined, {
      message: "give either dir: (a local folder) or s3: (a bucket), not both",
      path: ["s3"],
    })
    .transform((a): ArchiveConfig => (a.s3 !== undefined ? { s3: a.s3 } : { dir: a.dir ?? "./.archive" }));

export const batcherSection = () =>
  z
    .strictObject({
      max_receipts: z.int().min(1).max(20_000).default(2000),
      max_wait: durationMs().default(5000),
      known_grace: durationMs().default(3_600_000),
    })
    .prefault({})
    .transform((b): BatcherConfig => ({ maxReceipts: b.max_receipts, maxWaitMs: b.max_wait, knownGraceMs: b.known_grace }));

const rotationPkcs11Section = () =>
  z
    .strictObject({
      module: z.string({ error: "module: the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so" }).min(1),
      token: z.string().min(1).max(32).optional(),
      slot: z.int().min(0).optional(),
      pin_env: envName().optional(),
      pin_file: z.string().min(1).optional(),
      label_prefix: z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,40}$/, "label_prefix: 1 to 40 letters, digits, '.', '_' or '-' (created keys are labelled <prefix><time>-<random>)")
        .default("agentgpt-relayer-"),
    })
    .superRefine((p, ctx) => {
      if ((p.token === undefined) === (p.slot === undefined)) {
        ctx.addIssue({ code: "custom", path: ["token"], message: "give the token the new keys are generated in either by token: (its label) or by slot: (its slot id), not both or neither" });
      }
      if (p.pin_env !== undefined && p.pin_file !== undefined) {
        ctx.addIssue({ code: "custom", path: ["pin_file"], message: "give the user PIN either by pin_env: (a variable) or by pin_file: (a file), not both" });
      }
    })
    .transform(
      (p): RotationPkcs11Config => ({
        module: p.module,
        token: p.token,
        slot: p.slot,
        pinEnv: p.pin_env ?? DEFAULT_PIN_ENV,
        ...(p.pin_file === undefined ? {} : { pinFile: p.pin_file }),
        labelPrefix: p.label_prefix,
      }),
    );

export const rotationSection = () =>
  z
    .strictObject({
      every: durationMs().refine((ms) => ms >= 1000, "rotate at most once a second (24h in production)"),
      key: z
        .enum(["keystore", "pkcs11", "aws_kms"], { message: 'the kind of key to create: "keystore" (an encrypted keystore the relayer writes) or "pkcs11" (generated inside an HSM token)' })
        .default("keystore"),
      pkcs11: rotationPkcs11Section().optional(),
      keys_dir: z.string().min(1).optional(),
      password_env: envName().optional(),
      password_file: z.string().min(1).optional(),
      // the ROTATOR key: any signer kind (in production the HSM, like the relayer keys)
      rotator: z.strictObject(keyFields).superRefine(checkKey).transform(keyOf),
      fund: nativeAmount().default(0n),
      poll: durationMs().default(2000),
      lease_ttl: durationMs().default(15_000),
    })
    .superRefine((r, ctx) => {
      if (r.key === "aws_kms") {
        ctx.addIssue({
          code: "custom",
          path: ["key"],
          message:
            'key: aws_kms is not supported yet: KMS keys are created by the operator (ECC_SECG_P256K1, SIGN_VERIFY), and a rotation cannot create them; rotate with key: pkcs11 or key: keystore, or rotate KMS keys by hand (agentgpt keys rotate)',
        });
        return;
      }
      if (r.key === "pkcs11") {
        if (r.pkcs11 === undefined) {
          ctx.addIssue({ code: "custom", path: ["pkcs11"], message: "key: pkcs11 needs pkcs11: { module:, token: (or slot:), pin_env: or pin_file:, label_prefix: }: the token the new keys are generated in" });
        }
        for (const field of ["keys_dir", "password_env", "password_file"] as const) {
          if (r[field] !== undefined) ctx.addIssue({ code: "custom", path: [field], message: `${field}: is a setting of key: keystore; with key: pkcs11 the keys live in the token: remove it` });
        }
        return;
      }
      if (r.pkcs11 !== undefined) ctx.addIssue({ code: "custom", path: ["pkcs11"], message: "pkcs11: is used only with key: pkcs11: set key: pkcs11, or remove it" });
      if (r.password_env !== undefined && r.password_file !== undefined) {
        ctx.addIssue({ code: "custom", path: ["password_file"], message: "give the created keystores' password either by password_env: (a variable) or by password_file: (a file), not both" });
      }
    })
    .transform(
      (r): RotationConfig => ({
        everyMs: r.every,
        key: r.key === "pkcs11" ? "pkcs11" : "keystore",
        ...(r.pkcs11 === undefined ? {} : { pkcs11: r.pkcs11 }),
        keysDir: r.keys_dir ?? "./keys/rotated",
        passwordEnv: r.password_env ?? "AGENTGPT_ROTATED_KEYSTORE_PASSWORD",
        ...(r.password_file === undefined ? {} : { passwordFile: r.password_file }),
        rotator: r.rotator,
        fundWei: r.fund,
        pollMs: r.poll,
        leaseTtlMs: r.lease_ttl,
      }),
    );

export const settlerSection = () =>
  z
    .strictObject({
      signer: signerSection().optional(),
      rotation: rotationSection().optional(),
      fees: feesSection().prefault({}),
      stuck_after: durationMs().default(30_000),
      max_in_flight: z.int().min(1).max(64).default(4),
      poll: durationMs().default(1000),
      lease_ttl: durationMs().default(15_000),
      min_signer_balance: nativeAmount().default(0n),
    })
    .prefault({})
    .refine((s) => s.rotation === undefined || s.signer?.retiring === undefined, {
      message: "settler.rotation manages the retiring key itself: remove signer.retiring (finish the manual rotation first)",
      path: ["rotation"],
    })
    .transform(
      (s): SettlerConfig => ({
        signer: s.signer,
        rotation: s.rotation,
        fees: resolveFees({ maxFeePerGas: 50n * 10n ** 9n, minPriorityFeePerGas: 10n ** 7n, bumpPercent: 12.5 }, s.fees),
        stuckAfterMs: s.stuck_after,
        maxInFlight: s.max_in_flight,
        pollMs: s.poll,
        leaseTtlMs: s.lease_ttl,
        minSignerBalance: s.min_signer_balance,
      }),
    );
