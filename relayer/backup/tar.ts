/**
 * A minimal POSIX ustar writer and reader: regular files only, names up to 255 bytes (split into ustar's prefix and
 * name fields at a "/"), sizes below 8 GiB. That is all a backup needs, and `tar -tzf` / `tar -xzf` read the result.
 * The reader streams: it holds one entry in memory at a time (bounded by `maxEntryBytes`).
 *
 * Header layout (512 bytes): name 100, mode 8, uid 8, gid 8, size 12, mtime 12, chksum 8, typeflag 1, linkname 100,
 * magic "ustar\0" 6, version "00" 2, uname 32, gname 32, devmajor 8, devminor 8, prefix 155, padding 12. The checksum
 * is the sum of the header's bytes with the checksum field read as spaces.
 */
import type { Writable } from "node:stream";

const BLOCK = 512;
const MAX_SIZE = 8 ** 11 - 1; // 11 octal digits
/** Refuse entries larger than this when reading (a hostile archive cannot exhaust memory). */
export const DEFAULT_MAX_ENTRY_BYTES = 512 * 1024 * 1024;

export class TarError extends Error {
  override readonly name = "TarError";
}

export interface TarEntry {
  readonly name: string;
  readonly bytes: Buffer;
  /** unix seconds */
  readonly mtime: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function splitName(name: string): { prefix: string; name: string } {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return { prefix: "", name };
  for (let i = name.lastIndexOf("/"); i > 0; i = name.lastIndexOf("/", i - 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== "") return { prefix, name: rest };
  }
  throw new TarError(`entry name too long for ustar (${bytes} bytes): ${name}`);
}

/** The 512-byte header of a regular file. */
export function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_SIZE) throw new TarError(`entry ${name}: size ${size} out of ustar range`);
  if (name === "" || name.startsWith("/") || name.split("/").includes("..")) throw new TarError(`entry name ${JSON.stringify(name)} is not a relative path`);
  const split = splitName(name);
  const header = Buffer.alloc(BLOCK, 0);
  const put = (offset: number, width: number, text: string) => {
    const bytes = Buffer.from(text, "utf8");
    if (bytes.length > width) throw new TarError(`tar field overflow at ${offset}`);
    bytes.copy(header, offset);
  };
  put(0, 100, split.name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(Math.max(0, Math.floor(mtime)), 12));
  put(148, 8, "        ");
  put(156, 1, "0");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "agentgpt");
  put(297, 32, "agentgpt");
  put(345, 155, split.prefix);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return header;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest, 0);
}

/** Writes entries to `out` (e.g. a gzip stream), honouring back-pressure. */
export class TarWriter {
  private finished = false;
  readonly names = new Set<string>();

  constructor(private readonly out: Writable) {}

  async add(name: string, bytes: Uint8Array, mtime: number): Promise<void> {
    if (this.finished) throw new TarError("tar archive already finished");
    if (this.names.has(name)) throw new TarError(`duplicate entry ${name}`);
    this.names.add(name);
    await this.write(tarHeader(name, bytes.length, mtime));
    await this.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    await this.write(padding(bytes.length));
  }

  /** Writes the end-of-archive marker (two zero blocks) and ends `out`. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.write(Buffer.alloc(BLOCK * 2, 0));
    await new Promise<void>((resolve, reject) => {
      this.out.once("error", reject);
      this.out.end(() => resolve());
    });
  }

  private write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const ok = this.out.write(chunk, (error) => (error ? reject(error) : undefined));
      if (ok) resolve();
      else this.out.once("drain", resolve);
    });
  }
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly iterator: AsyncIterator<Buffer | Uint8Array | string>;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or null when the stream ended before any byte; throws when it ends part way. */
  async take(n: number): Promise<Buffer | null> {
    while (this.buffered < n && !this.done) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.done = true;
        break;
      }
      const chunk = typeof next.value === "string" ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.length);
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    if (this.buffered === 0 && n > 0) return null;
    if (this.buffered < n) throw new TarError(`the archive ends in the middle of an entry (${this.buffered} of ${n} bytes)`);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return Buffer.from(out);
  }
}

function field(header: Buffer, offset: number, width: number): string {
  const raw = header.subarray(offset, offset + width);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? width : end).toString("utf8");
}

function parseOctal(header: Buffer, offset: number, width: number, what: string): number {
  const text = field(header, offset, width).trim();
  if (!/^[0-7]*$/.test(text)) throw new TarError(`bad ${what} field in a tar header: ${JSON.stringify(text)}`);
  return text === "" ? 0 : parseInt(text, 8);
}

/** The entries of a tar stream, in order. Directories are skipped; links and special files are refused. */
export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  options: { maxEntryBytes?: number } = {},
): AsyncGenerator<TarEntry> {
  const max = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const reader = new ByteReader(source);
  for (;;) {
    const header = await reader.take(BLOCK);
    if (header === null) throw new TarError("the archive ends without its end-of-archive marker (truncated?)");
    if (header.every((byte) => byte === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    const recorded = parseOctal(header, 148, 8, "checksum");
    if (sum !== recorded) throw new TarError("a tar header's checksum does not match (corrupt archive)");
    const prefix = field(header, 345, 155);
    const base = field(header, 0, 100);
    const name = prefix === "" ? base : `${prefix}/${base}`;
    const size = parseOctal(header, 124, 12, "size");
    const mtime = parseOctal(header, 136, 12, "mtime");
    const type = String.fromCharCode(header[156]!);
    if (size > max) throw new TarError(`entry ${name} is ${size} bytes, above the ${max}-byte limit`);
    const data = size === 0 ? Buffer.alloc(0) : await reader.take(size);
    if (data === null) throw new TarError(`the archive ends before the data of ${name}`);
    const rest = size % BLOCK;
    if (rest !== 0) await reader.take(BLOCK - rest);
    if (type === "5") continue;
    if (type !== "0" && type !== "\0") throw new TarError(`entry ${name} is not a regular file (tar type ${JSON.stringify(type)})`);
    yield { name, bytes: data, mtime };
  }
}
