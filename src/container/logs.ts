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

/** Appends json-file entries to one log file; lines are written whole, in one write each. */
export class LogWriter {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Opens `path` for appending (creating it, mode 0640). */
  static async open(path: string): Promise<LogWriter> {
    return new LogWriter(
      await Deno.open(path, { append: true, create: true, mode: 0o640 }),
    );
  }

  /** Writes one entry. */
  async write(stream: LogStream, log: string): Promise<void> {
    const line = JSON.stringify({ log, stream, time: logTime() }) + "\n";
    const bytes = this.#encoder.encode(line);
    let off = 0;
    while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
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

/** Entries of a log file with the filters applied (missing file: none). */
export async function readLogs(path: string, o: ReadLogsOptions = {}): Promise<LogEntry[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  let { entries } = parseLogText(text);
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
 * Follows a log file: yields entries (filtered by `o`) appended after what was already
 * read, polling every `intervalMs`, until `done()` is true and nothing more arrived.
 */
export async function* followLogs(
  path: string,
  o: ReadLogsOptions,
  done: () => boolean,
  intervalMs = 100,
): AsyncGenerator<LogEntry> {
  let offset = 0;
  let rest = "";
  const decoder = new TextDecoder();
  let first = true;
  for (;;) {
    // Sampled before reading, so that output written just before the exit is still read.
    const finished = done();
    let chunk = "";
    try {
      using file = await Deno.open(path);
      await file.seek(offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await file.read(buf);
        if (n === null) break;
        offset += n;
        chunk += decoder.decode(buf.subarray(0, n), { stream: true });
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
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
