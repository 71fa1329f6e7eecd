/**
 * A local stand-in for AWS KMS, for the KMS signer's tests (no KMS is reachable here): an HTTP server speaking the
 * KMS JSON protocol (POST /, `X-Amz-Target: TrentService.<Operation>`, `application/x-amz-json-1.1`, blobs in
 * base64, errors as `{"__type": ..., "message": ...}` with HTTP 400) for the two operations a signer uses, written
 * from AWS's API reference:
 * - GetPublicKey {KeyId} -> {KeyId, PublicKey (DER SubjectPublicKeyInfo), KeySpec, KeyUsage, SigningAlgorithms}
 * - Sign {KeyId, Message, MessageType, SigningAlgorithm} -> {KeyId, Signature (DER), SigningAlgorithm}
 * It holds real secp256k1 keys (and one P-256 key, to be refused) and, like KMS, does not canonicalize signatures:
 * `highS` makes it return the upper-half `s` of each signature. Requests must carry a SigV4 Authorization header
 * (the SDK signs them); each request is recorded.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { SigningKey, computeAddress, getBytes, hexlify, toBeArray } from "ethers";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

export interface StandinKey {
  readonly arn: string;
  readonly spec: "ECC_SECG_P256K1" | "ECC_NIST_P256";
  readonly address: string | null;
  readonly signingKey: SigningKey | null;
  readonly spki: Buffer;
}

export interface KmsRequest {
  readonly target: string;
  readonly authorization: string;
  readonly contentType: string;
  readonly body: Record<string, unknown>;
}

export interface KmsStandin {
  readonly url: string;
  readonly region: string;
  readonly requests: KmsRequest[];
  /** Signs with the upper-half s (as KMS may); counts the signatures returned that way. */
  highS: boolean;
  highSigned: number;
  addKey(spec?: StandinKey["spec"]): StandinKey;
  close(): Promise<void>;
}

function derInteger(value: bigint): Buffer {
  let bytes = Buffer.from(toBeArray(value));
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}

function derSignature(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function privateScalar(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" });
  return hexlify(Buffer.from(jwk.d!, "base64url"));
}

export async function startKmsStandin(options: { region?: string } = {}): Promise<KmsStandin> {
  const region = options.region ?? "eu-west-1";
  const keys = new Map<string, StandinKey>();
  let counter = 0;
  const standin: KmsStandin = {
    url: "",
    region,
    requests: [],
    highS: true,
    highSigned: 0,
    addKey(spec = "ECC_SECG_P256K1") {
      counter += 1;
      const id = `1234abcd-12ab-34cd-56ef-${counter.toString().padStart(12, "0")}`;
      const arn = `arn:aws:kms:${region}:111122223333:key/${id}`;
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: spec === "ECC_SECG_P256K1" ? "secp256k1" : "prime256v1" });
      const spki = publicKey.export({ type: "spki", format: "der" });
      const signingKey = spec === "ECC_SECG_P256K1" ? new SigningKey(privateScalar(privateKey)) : null;
      const key: StandinKey = { arn, spec, address: signingKey === null ? null : computeAddress(signingKey.publicKey), signingKey, spki };
      keys.set(arn, key);
      keys.set(id, key);
      return key;
    },
    close: async () => undefined,
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": `req-${standin.requests.length}` });
        res.end(JSON.stringify(body));
      };
      const error = (type: string, message: string) => reply(400, { __type: type, message });
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        return error("SerializationException", "body is not JSON");
      }
      const target = String(req.headers["x-amz-target"] ?? "");
      const authorization = String(req.headers.authorization ?? "");
      standin.requests.push({ target, authorization, contentType: String(req.headers["content-type"] ?? ""), body });
      if (req.method !== "POST") return error("UnknownOperationException", "POST only");
      if (!authorization.startsWith("AWS4-HMAC-SHA256 Credential=")) return error("MissingAuthenticationTokenException", "Request is missing Authentication Token");
      const key = keys.get(String(body.KeyId ?? ""));
      if (target === "TrentService.GetPublicKey" || target === "TrentService.Sign") {
        if (key === undefined) return error("NotFoundException", `Key '${String(body.KeyId)}' does not exist`);
      }
      if (target === "TrentService.GetPublicKey") {
        return reply(200, {
          KeyId: key!.arn,
          PublicKey: key!.spki.toString("base64"),
          KeySpec: key!.spec,
          CustomerMasterKeySpec: key!.spec,
          KeyUsage: "SIGN_VERIFY",
          SigningAlgorithms: ["ECDSA_SHA_256"],
        });
      }
      if (target === "TrentService.Sign") {
        if (body.SigningAlgorithm !== "ECDSA_SHA_256") return error("InvalidKeyUsageException", `${String(body.SigningAlgorithm)} is not valid for this key`);
        const message = Buffer.from(String(body.Message ?? ""), "base64");
        if (body.MessageType !== "DIGEST" || message.length !== 32) return error("ValidationException", "this stand-in signs 32-byte digests (MessageType DIGEST) only");
        if (key!.signingKey === null) return error("UnsupportedOperationException", "stand-in: no signer for this key spec");
        const signature = key!.signingKey.sign(getBytes(hexlify(message)));
        let s = BigInt(signature.s);
        if (standin.highS) {
          s = N - s;
          standin.highSigned += 1;
        }
        return reply(200, { KeyId: key!.arn, Signature: derSignature(BigInt(signature.r), s).toString("base64"), SigningAlgorithm: "ECDSA_SHA_256" });
      }
      return error("UnknownOperationException", `stand-in: ${target} is not served`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(standin, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return standin;
}
