/**
 * What the exchange commands do, loaded only when one of them runs.
 *
 * @module
 */
import { parseReference } from "../../registry/reference.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { imageHistory } from "../image/history.ts";
import { familiar, requireImage } from "../image/images.ts";
import { loadImages } from "../image/load.ts";
import { login, logout } from "../image/login.ts";
import { type PushEvent, pushImage } from "../image/push.ts";
import { type ArchiveFormat, saveImages, saveImagesToFile } from "../image/save.ts";
import { Store } from "../store/mod.ts";
import { ago, ellipsis, humanSize, table } from "./format.ts";
import { isDefaultTable, printList } from "./formats.ts";
import { GO_TYPE, type Row } from "./template/values.ts";
import type { GlobalOptions } from "./globals.ts";

const encoder = new TextEncoder();

function writeOut(s: string): void {
  const bytes = encoder.encode(s);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Reads a line from the terminal without echoing it. */
async function readSecret(question: string): Promise<string> {
  writeOut(question);
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  try {
    const buf = new Uint8Array(64);
    outer: for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      for (const b of buf.subarray(0, n)) {
        if (b === 0x0d || b === 0x0a) break outer;
        if (b === 0x03) throw new TsboxError("login cancelled");
        if (b === 0x7f || b === 0x08) bytes.pop();
        else bytes.push(b);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    writeOut("\n");
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** `login`. */
export async function loginCommand(
  g: GlobalOptions,
  server: string | undefined,
  opts: { username?: string; password?: string; passwordStdin?: boolean },
): Promise<void> {
  let username = opts.username;
  let password = opts.password;
  if (opts.passwordStdin) {
    if (password !== undefined) {
      throw new UsageError("--password and --password-stdin are mutually exclusive");
    }
    if (!username) throw new UsageError("must provide --username with --password-stdin");
    password = (await readAll(Deno.stdin.readable)).replace(/\r?\n$/, "");
  } else if (password !== undefined) {
    console.error("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
  }
  const interactive = Deno.stdin.isTerminal();
  if (!username) {
    if (!interactive) {
      throw new TsboxError("Cannot perform an interactive login from a non TTY device");
    }
    username = (prompt("Username:") ?? "").trim();
  }
  if (password === undefined) {
    if (!interactive) {
      throw new TsboxError("Cannot perform an interactive login from a non TTY device");
    }
    password = await readSecret("Password: ");
  }
  if (!username || !password) throw new TsboxError("username and password are required");
  // Verified before anything is written: a wrong password leaves the config untouched.
  await login(server, username, password, { insecure: g.insecureRegistries });
  console.log("Login Succeeded");
}

/** `logout`. */
export async function logoutCommand(_g: GlobalOptions, server: string | undefined): Promise<void> {
  const { host, removed } = await logout(server);
  if (removed) console.log(`Removing login credentials for ${host}`);
  else console.log(`Not logged in to ${host}`);
}

/** Docker-style push progress: a line per status change, redrawn in place on a terminal. */
class PushProgress {
  readonly #tty = Deno.stdout.isTerminal();
  readonly #order: string[] = [];
  readonly #lines = new Map<string, string>();
  #drawn = 0;

  event(e: PushEvent): void {
    if (!this.#lines.has(e.id)) this.#order.push(e.id);
    const text = e.status === "Mounted from" ? `Mounted from ${e.from}` : e.status;
    const bar = e.status === "Pushing" && this.#tty && e.total
      ? ` ${humanSize(e.current ?? 0)}/${humanSize(e.total)}`
      : "";
    const line = `${e.id}: ${text}${bar}`;
    const previous = this.#lines.get(e.id);
    this.#lines.set(e.id, line);
    if (this.#tty) this.#redraw();
    else if (previous?.split(":")[1] !== line.split(":")[1]) writeOut(`${line}\n`);
  }

  #redraw(): void {
    let s = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const id of this.#order) s += `\x1b[2K${this.#lines.get(id)}\n`;
    this.#drawn = this.#order.length;
    writeOut(s);
  }
}

/** `push`. */
export async function pushCommand(
  g: GlobalOptions,
  name: string,
  opts: { quiet?: boolean },
): Promise<void> {
  const store = await Store.open(g.root);
  try {
    const ref = parseReference(name);
    const progress = opts.quiet ? undefined : new PushProgress();
    if (!opts.quiet) {
      console.log(`The push refers to repository [${ref.repository}]`);
    }
    const result = await pushImage(store, name, {
      insecure: g.insecureRegistries,
      onProgress: progress ? (e) => progress.event(e) : undefined,
    });
    if (opts.quiet) console.log(ref.familiar());
    else console.log(`${ref.tag}: digest: ${result.digest} size: ${result.size}`);
  } finally {
    store.close();
  }
}

/** `save`. */
export async function saveCommand(
  g: GlobalOptions,
  names: string[],
  opts: { output?: string; format: ArchiveFormat; platform?: string },
): Promise<void> {
  if (!opts.output && Deno.stdout.isTerminal()) {
    throw new TsboxError(
      "cowardly refusing to save to a terminal. Use the -o flag or redirect",
    );
  }
  const platforms = opts.platform
    ? (await import("../builder/platforms.ts")).parsePlatforms(opts.platform)
    : undefined;
  const store = await Store.open(g.root);
  try {
    const options = { format: opts.format, platforms };
    if (opts.output) await saveImagesToFile(store, names, opts.output, options);
    else await saveImages(store, names, options).pipeTo(Deno.stdout.writable);
  } finally {
    store.close();
  }
}

/** `load`. */
export async function loadCommand(
  g: GlobalOptions,
  opts: { input?: string; quiet?: boolean },
): Promise<void> {
  let input: ReadableStream<Uint8Array>;
  if (opts.input) {
    input = (await Deno.open(opts.input)).readable;
  } else {
    if (Deno.stdin.isTerminal()) {
      throw new TsboxError("requested load from stdin, but stdin is empty");
    }
    input = Deno.stdin.readable;
  }
  const store = await Store.open(g.root);
  try {
    const tty = !opts.quiet && Deno.stdout.isTerminal();
    const loaded = await loadImages(store, input, {
      onProgress: tty ? (e) => writeOut(`${e.id}: ${e.status}\n`) : undefined,
    });
    for (const image of loaded) {
      if (image.tags.length === 0) console.log(`Loaded image ID: ${image.id}`);
      for (const t of image.tags) console.log(`Loaded image: ${familiar(t)}`);
    }
  } finally {
    store.close();
  }
}

/** `history`. */
export async function historyCommand(
  g: GlobalOptions,
  name: string,
  opts: { trunc?: boolean; quiet?: boolean; format?: string; human: boolean },
): Promise<void> {
  const store = await Store.open(g.root);
  try {
    const rows = imageHistory(requireImage(store, name));
    const trunc = opts.trunc !== false;
    const id = (s: string) => s.startsWith("sha256:") && trunc ? s.slice(7, 19) : s;
    if (opts.quiet) {
      for (const r of rows) console.log(id(r.id));
      return;
    }
    const created = (c?: string) => opts.human ? ago(c) : c ?? "";
    const size = (n: number) => opts.human ? humanSize(n) : String(n);
    const createdBy = (s: string) => {
      const flat = s.replaceAll("\t", " ");
      return trunc ? ellipsis(flat, 45) : flat;
    };
    if (!isDefaultTable(opts.format)) {
      // docker's historyContext: CreatedAt is RFC 3339 in UTC.
      const rfc3339 = (c?: string) => c ? new Date(c).toISOString().replace(/\.\d+Z$/, "Z") : "";
      await printList(
        opts.format!,
        rows.map((r): Row => ({
          [GO_TYPE]: "*formatter.historyContext",
          Comment: () => r.comment,
          CreatedAt: () => rfc3339(r.created),
          CreatedBy: () => createdBy(r.createdBy),
          CreatedSince: () => opts.human ? ago(r.created) : rfc3339(r.created),
          ID: () => id(r.id),
          Size: () => size(r.size),
        })),
        {
          ID: "IMAGE",
          CreatedSince: "CREATED",
          CreatedAt: "CREATED AT",
          CreatedBy: "CREATED BY",
          Size: "SIZE",
          Comment: "COMMENT",
        },
      );
      return;
    }
    console.log(table(
      ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
      rows.map((
        r,
      ) => [id(r.id), created(r.created), createdBy(r.createdBy), size(r.size), r.comment]),
    ));
  } finally {
    store.close();
  }
}
