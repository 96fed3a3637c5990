/**
 * Container logs in docker's json-file format: one JSON object per line,
 * `{"log":"text\n","stream":"stdout","time":"2024-01-01T00:00:00.000000000Z"}`, written by the
 * supervisor and read back by `logs` (tail, since, timestamps, follow).
 *
 * @module
 */

/** Which stream a line came from. */
export type LogStream = "stdout" | "stderr";

/** One log entry. */
export interface LogEntry {
  /** The text, with its newline when the line had one. */
  readonly log: string;
  readonly stream: LogStream;
  /** RFC 3339 with nanoseconds, UTC. */
  readonly time: string;
}

/** Largest line kept in one entry; longer lines are split, as docker does at 16 KiB. */
const MAX_LINE = 16 * 1024;

/** RFC 3339 with nine fraction digits, as docker writes. */
export function logTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}

/** How the log rotates (src/container/log_opts.ts); unbounded when absent. */
export interface LogRotation {
  /** Rotate before a write that would take the live file past this many bytes. */
  readonly maxSize?: number;
  /** Files kept, the live one included. */
  readonly maxFile: number;
  /** `--log-driver` other than json-file: `none` keeps nothing (log_opts.ts). */
  readonly driver?: "local" | "none";
}

/**
 * Appends json-file entries to one log file; lines are written whole, in one write each, one
 * write at a time (stdout's and stderr's pumps share the file). With `maxSize`, the files
 * rotate as docker's json-file driver rotates them: `log` becomes `log.1`, `log.1` becomes
 * `log.2`, ..., the oldest beyond `maxFile - 1` is deleted, and a new `log` starts. Unlike
 * docker, the rotation happens before an entry that would pass `maxSize` rather than after, so
 * no file exceeds it (unless one entry alone does).
 */
export class LogWriter {
  #file: Deno.FsFile;
  #size: number;
  readonly #path: string;
  readonly #rotation?: LogRotation;
  readonly #encoder = new TextEncoder();
  #queue: Promise<void> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile, size: number, rotation?: LogRotation) {
    this.#path = path;
    this.#file = file;
    this.#size = size;
    this.#rotation = rotation?.maxSize ? rotation : undefined;
  }

  /** Opens `path` for appending (creating it, mode 0640). */
  static async open(path: string, rotation?: LogRotation): Promise<LogWriter> {
    if (rotation?.driver === "none") {
      // Nothing kept: entries go to /dev/null (attached clients still get the output).
      return new LogWriter("/dev/null", await Deno.open("/dev/null", { write: true }), 0);
    }
    const file = await Deno.open(path, { append: true, create: true, mode: 0o640 });
    return new LogWriter(path, file, (await file.stat()).size, rotation);
  }

  /** Writes one entry (after any write still in progress). */
  write(stream: LogStream, log: string): Promise<void> {
    const line = JSON.stringify({ log, stream, time: logTime() }) + "\n";
    const bytes = this.#encoder.encode(line);
    const next = this.#queue.then(() => this.#append(bytes));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #append(bytes: Uint8Array): Promise<void> {
    const max = this.#rotation?.maxSize;
    if (max !== undefined && this.#size > 0 && this.#size + bytes.length > max) {
      await this.#rotate();
    }
    let off = 0;
    while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
    this.#size += bytes.length;
  }

  async #rotate(): Promise<void> {
    const keep = this.#rotation!.maxFile - 1;
    this.#file.close();
    if (keep === 0) {
      // One file only: start it again, as docker does.
      this.#file = await Deno.open(this.#path, { write: true, truncate: true, mode: 0o640 });
      this.#size = 0;
      return;
    }
    await Deno.remove(`${this.#path}.${keep}`).catch(() => {});
    for (let i = keep - 1; i >= 1; i--) {
      await Deno.rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`).catch(() => {});
    }
    await Deno.rename(this.#path, `${this.#path}.1`);
    this.#file = await Deno.open(this.#path, { append: true, create: true, mode: 0o640 });
    this.#size = 0;
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/**
 * Copies `source` into the log line by line as `stream`, and each chunk to `tee` as it
 * arrives (the attached terminal). Resolves at EOF, after writing any unterminated last line.
 */
export async function pumpToLog(
  source: ReadableStream<Uint8Array>,
  stream: LogStream,
  log: LogWriter,
  tee?: { write(p: Uint8Array): Promise<number> },
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  let teeOk = tee !== undefined;
  for await (const chunk of source) {
    if (teeOk) {
      try {
        let off = 0;
        while (off < chunk.length) off += await tee!.write(chunk.subarray(off));
      } catch {
        teeOk = false; // the terminal went away; the log goes on
      }
    }
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0 || pending.length >= MAX_LINE) {
      const end = nl >= 0 && nl < MAX_LINE ? nl + 1 : MAX_LINE;
      await log.write(stream, pending.slice(0, end));
      pending = pending.slice(end);
    }
  }
  pending += decoder.decode();
  if (pending) await log.write(stream, pending);
}

/** Options of {@link readLogs}. */
export interface ReadLogsOptions {
  /** Only the last N entries (of those after `since`). */
  readonly tail?: number;
  /** Only entries at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only entries before this time (ms since the epoch). */
  readonly until?: number;
}

/** Parses json-file text; a torn last line (being written) is left for the next read. */
export function parseLogText(text: string): { entries: LogEntry[]; rest: string } {
  const lines = text.split("\n");
  const rest = lines.pop() ?? "";
  const entries: LogEntry[] = [];
  for (const line of lines) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch { /* a line torn by a crash: skip it */ }
  }
  return { entries, rest };
}

/** One file of a log's chain, held open so that a rotation cannot swap it under the reader. */
interface ChainFile {
  readonly file: Deno.FsFile;
  /** Unique while the file is open: an open inode is never freed, so never reused. */
  readonly ino: number;
}

function openIfThere(path: string): ChainFile | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return { file, ino: file.statSync().ino ?? 0 };
}

function inoOf(path: string): number | undefined {
  try {
    return Deno.statSync(path).ino ?? 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function closeAll(files: readonly ChainFile[]): void {
  for (const f of files) f.file.close();
}

/**
 * The files of log `path` that exist, oldest first (`path.N` ... `path.1`, then `path`), each
 * open. The writer renames `.N-1 -> .N` ... `log -> .1` in several steps, so one listing taken
 * while it rotates can skip a file; the listing is taken again until a second look by name
 * finds the same inodes in the same places (a rotation in between changes every place).
 */
function openChain(path: string): ChainFile[] {
  for (let attempt = 0;; attempt++) {
    const names: string[] = [];
    for (let i = 1; inoOf(`${path}.${i}`) !== undefined; i++) names.unshift(`${path}.${i}`);
    names.push(path);
    const files: ChainFile[] = [];
    const kept: string[] = [];
    for (const name of names) {
      const f = openIfThere(name);
      if (f) {
        files.push(f);
        kept.push(name);
      }
    }
    const stable = kept.every((name, i) => inoOf(name) === files[i].ino) &&
      inoOf(`${path}.${names.length}`) === undefined &&
      (kept.at(-1) === path || inoOf(path) === undefined);
    if (stable || attempt >= 100) return files;
    closeAll(files);
  }
}

/** Reads `file` from where it stands to its end. */
async function readToEnd(file: Deno.FsFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const buf = new Uint8Array(64 * 1024);
    const n = await file.read(buf);
    if (n === null || n === 0) break;
    size += n;
    chunks.push(buf.subarray(0, n));
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

/**
 * Entries of a log with the filters applied, across its rotated files in order (missing
 * file: none).
 */
export async function readLogs(path: string, o: ReadLogsOptions = {}): Promise<LogEntry[]> {
  const decoder = new TextDecoder();
  let entries: LogEntry[] = [];
  const files = openChain(path);
  try {
    for (const f of files) {
      // Each file ends with a whole line (unless being written): parse them one by one.
      entries.push(...parseLogText(decoder.decode(await readToEnd(f.file))).entries);
    }
  } finally {
    closeAll(files);
  }
  entries = entries.filter((e) => inRange(e, o));
  if (o.tail !== undefined && o.tail >= 0) entries = o.tail === 0 ? [] : entries.slice(-o.tail);
  return entries;
}

function inRange(e: LogEntry, o: ReadLogsOptions): boolean {
  if (o.since === undefined && o.until === undefined) return true;
  const t = Date.parse(e.time);
  return (o.since === undefined || t >= o.since) && (o.until === undefined || t < o.until);
}

/**
 * Follows a log: yields entries (filtered by `o`) appended after what was already read,
 * polling every `intervalMs`, until `done()` is true and nothing more arrived. The file being
 * read stays open across polls and is read to its end before anything newer: when `path` no
 * longer names it, the writer rotated, and the files after it in the chain (found by its
 * inode) are read in order, the last of them becoming the one followed.
 */
export async function* followLogs(
  path: string,
  o: ReadLogsOptions,
  done: () => boolean,
  intervalMs = 100,
): AsyncGenerator<LogEntry> {
  let current: ChainFile | undefined;
  let rest = "";
  // One decoder for the whole stream: a line being written may end mid-character.
  const decoder = new TextDecoder();
  let first = true;
  try {
    for (;;) {
      // Sampled before reading, so that output written just before the exit is still read.
      const finished = done();
      let chunk = "";
      if (current) chunk += decoder.decode(await readToEnd(current.file), { stream: true });
      if (!current || inoOf(path) !== current.ino) {
        const chain = openChain(path);
        // Missing from the chain: deleted before it was finished (a reader far behind).
        const at = current ? chain.findIndex((f) => f.ino === current!.ino) : -1;
        if (current && at >= 0) {
          // The chain's copy is the same file, read to its end just above.
          chunk += decoder.decode(await readToEnd(current.file), { stream: true });
        }
        const newer = chain.slice(at + 1);
        for (const f of newer) chunk += decoder.decode(await readToEnd(f.file), { stream: true });
        closeAll(chain.slice(0, Math.max(0, chain.length - 1)));
        if (newer.length > 0) {
          current?.file.close();
          current = newer.at(-1);
        } else {
          chain.at(-1)?.file.close();
        }
      }
      const parsed = parseLogText(rest + chunk);
      rest = parsed.rest;
      let entries = parsed.entries.filter((e) => inRange(e, o));
      if (first && o.tail !== undefined && o.tail >= 0) {
        entries = o.tail === 0 ? [] : entries.slice(-o.tail);
      }
      first = false;
      yield* entries;
      if (finished) return;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    current?.file.close();
  }
}

/** `--since`/`--until` values: RFC 3339 times, Unix seconds, or durations like `10m`, `1h30m`. */
export function parseTimeFilter(value: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const dur = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(value);
  if (dur && value !== "") {
    const ms = (Number(dur[1] ?? 0) * 3600 + Number(dur[2] ?? 0) * 60 + Number(dur[3] ?? 0)) *
      1000;
    return now - ms;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new RangeError(`invalid time value: ${value}`);
  return t;
}
