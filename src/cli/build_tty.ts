/**
 * BuildKit's `tty` progress for `build`: a live view on a terminal, redrawn in place, of every
 * step with its time (`=> [stage i/n] INSTRUCTION  1.2s`, `=> CACHED ...` for a hit), the last
 * lines of each running step's output under it (`=> => # line`), and a header counting the steps
 * done (`[+] Building 3.2s (4/6)`, `FINISHED` at the end).
 *
 * @module
 */
import type { BuildPrinter, Sink } from "./build_progress.ts";

/** A step as the view shows it. */
interface Row {
  readonly name: string;
  readonly started: number;
  ended?: number;
  cached?: boolean;
  error?: boolean;
  /** Its last output lines (a running step shows them). */
  tail: string[];
  partial: string;
}

/** How many output lines a running step shows, as BuildKit. */
const TAIL = 6;

/** The terminal's width (80 when it cannot be read, as when stdout is not the terminal). */
function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/** The live view. `columns` gives the terminal's width; `now` the clock (ms). */
export function ttyPrinter(
  sink: Sink,
  columns: () => number = terminalColumns,
  now: () => number = Date.now,
): BuildPrinter {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const write = (s: string) => {
    let data = enc.encode(s);
    while (data.length > 0) data = data.subarray(sink.writeSync(data));
  };
  const rows = new Map<number, Row>();
  const warnings: string[] = [];
  const started = now();
  let drawn = 0;
  let finished = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  const fit = (text: string, width: number) =>
    text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const frame = (): string[] => {
    const width = Math.max(40, columns());
    const all = [...rows.values()];
    const done = all.filter((r) => r.ended !== undefined).length;
    const lines = [
      `[+] Building ${secs(now() - started)} (${done}/${all.length})${finished ? " FINISHED" : ""}`,
    ];
    for (const r of all) {
      const time = r.cached ? "0.0s" : secs((r.ended ?? now()) - r.started);
      const label = `${r.cached ? "CACHED " : r.error ? "ERROR " : ""}${r.name}`;
      const room = width - 4 - time.length - 1;
      lines.push(` => ${fit(label, room).padEnd(room)} ${time}`);
      if (r.ended === undefined || r.error) {
        const shown = r.partial ? [...r.tail, r.partial].slice(-TAIL) : r.tail;
        for (const t of shown) lines.push(fit(` => => # ${t}`, width));
      }
    }
    for (const w of warnings) lines.push(fit(`WARNING: ${w}`, width));
    return lines;
  };
  const draw = () => {
    const lines = frame();
    // Up to the top of the last frame, each line rewritten and cleared to its end, then
    // whatever the last frame had below cleared.
    let s = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const l of lines) s += `\r${l}\x1b[K\n`;
    s += "\x1b[J";
    drawn = lines.length;
    write(s);
  };
  const tick = () => {
    if (timer === undefined && !finished) timer = setInterval(draw, 100);
  };
  const stop = () => {
    finished = true;
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    draw();
  };
  return {
    event(e) {
      switch (e.type) {
        case "step":
          rows.set(e.step, {
            name: `${e.vertex ?? `[${e.step}/${e.total}]`} ${e.instruction}`,
            started: now(),
            tail: [],
            partial: "",
          });
          tick();
          break;
        case "output": {
          const r = e.step === undefined ? undefined : rows.get(e.step);
          if (!r) break;
          const parts = (r.partial + dec.decode(e.data, { stream: true })).split("\n");
          r.partial = parts.pop() ?? "";
          r.tail = [...r.tail, ...parts].slice(-TAIL);
          break;
        }
        case "step-done": {
          const r = rows.get(e.step);
          if (r) {
            r.ended = now();
            r.cached = e.cached;
          }
          break;
        }
        case "pull": {
          // A base image's layers as they arrive, under the FROM that pulls them.
          const r = [...rows.values()].at(-1);
          const p = e.event;
          if (r && p.type === "layer" && p.status === "Pull complete") {
            r.tail = [...r.tail, `sha256:${p.id} pulled`].slice(-TAIL);
          }
          break;
        }
        case "warning":
          warnings.push(e.message);
          break;
        case "done":
          rows.set(-1, {
            name: `exporting to image${e.tags.length ? ` (naming to ${e.tags.join(", ")})` : ""}`,
            started: now(),
            ended: now(),
            tail: [],
            partial: "",
          });
          break;
      }
    },
    failed() {
      for (const r of rows.values()) {
        if (r.ended === undefined) {
          r.ended = now();
          r.error = true;
        }
      }
      stop();
    },
    finished() {
      stop();
    },
  };
}
