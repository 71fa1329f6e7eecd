/**
 * Passwords come from an environment variable, else from the terminal with echo off (twice for a new keystore), or
 * from a password file (the settler's `password_file:`). Without either, the error names the variable to set. A
 * password is never printed or logged.
 */
import { readFile } from "node:fs/promises";

import { KeyError } from "./errors.js";

export interface PasswordSources {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly stdin?: NodeJS.ReadStream;
  readonly stderr?: NodeJS.WritableStream;
}

/** The password in `variable`, or typed on the terminal; `confirm` asks twice and compares. */
export async function readPassword(variable: string, prompt: string, options: PasswordSources & { confirm?: boolean } = {}): Promise<{ password: string; source: string }> {
  const env = options.env ?? process.env;
  const fromEnv = env[variable];
  if (fromEnv !== undefined && fromEnv !== "") return { password: fromEnv, source: `the password in $${variable}` };
  const stdin = options.stdin ?? process.stdin;
  if (stdin.isTTY !== true) {
    throw new KeyError("NO_PASSWORD", `set ${variable} to the keystore password (there is no terminal to ask on)`);
  }
  const password = await ask(prompt, stdin, options.stderr ?? process.stderr);
  if (options.confirm === true) {
    const again = await ask("repeat the password: ", stdin, options.stderr ?? process.stderr);
    if (again !== password) throw new KeyError("INVALID_INPUT", "the two passwords differ: nothing was written; run the command again");
  }
  return { password, source: "the password typed" };
}

/** The password in `file` (its first line; the line break is not part of it), as the settler reads password_file. */
export async function passwordFromFile(file: string): Promise<{ password: string; source: string }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new KeyError("INVALID_INPUT", `cannot read the password file ${file}: write the keystore's password there (one line, chmod 600)`);
  }
  const password = text.replace(/\r?\n$/, "");
  if (password === "") throw new KeyError("INVALID_INPUT", `the password file ${file} is empty: write the keystore's password there`);
  return { password, source: `the password in ${file}` };
}

/** Reads one line from the terminal without echoing it. */
function ask(prompt: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WritableStream): Promise<string> {
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  return new Promise<string>((resolve, reject) => {
    let password = "";
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === "\r" || char === "\n") {
          cleanup();
          stderr.write("\n");
          resolve(password);
          return;
        }
        if (char === "\u0003") {
          cleanup();
          stderr.write("\n");
          reject(new KeyError("INVALID_INPUT", "cancelled"));
          return;
        }
        password = char === "\u007f" || char === "\b" ? password.slice(0, -1) : password + char;
      }
    };
    const cleanup = () => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    stdin.on("data", onData);
  });
}
