/**
 * How `build` shows its progress (`--progress`): docker's classic builder output (numbered steps,
 * RUN output as is, " ---> ID"; `auto` off a terminal), BuildKit's `plain` (each step a numbered
 * vertex `#N [stage i/n] INSTRUCTION`, its output lines `#N SECONDS LINE`, then `#N DONE 0.3s`
 * or `#N CACHED`, on stderr as docker prints it), `rawjson` (BuildKit's solve status, one JSON
 * object a line, on stderr) and `quiet` (the image id alone). The live view of `tty` (and of
 * `auto` on a terminal) is build_tty.ts.
 *
 * @module
 */
import type { BuildEvent } from "../builder/builder.ts";
import { familiar } from "../image/images.ts";

/** Prints one build's events. */
export interface BuildPrinter {
  event(e: BuildEvent): void;
  /** The build failed with `err` (printed afterwards by the CLI's error handler). */
  failed(err: Error): void;
  /** The build finished after `ms`. */
  finished(ms: number): void;
}

const enc = new TextEncoder();

/** A sink for printed bytes (stdout or stderr). */
export type Sink = { writeSync(p: Uint8Array): number };

function writer(sink: Sink): (s: string | Uint8Array) => void {
  return (s) => {
    let data = typeof s === "string" ? enc.encode(s) : s;
    while (data.length > 0) data = data.subarray(sink.writeSync(data));
  };
}

/** docker's classic builder output; `quiet` prints nothing but warnings (the id comes later). */
export function classicPrinter(sink: Sink, quiet: boolean): BuildPrinter {
  const write = writer(sink);
  return {
    event(e) {
      if (e.type === "warning") {
        console.error(`WARNING: ${e.message}`);
        return;
      }
      if (quiet) return;
      switch (e.type) {
        case "step":
          write(`Step ${e.step}/${e.total} : ${e.instruction}\n`);
          break;
        case "output":
          write(e.data);
          break;
        case "pull":
          if (e.event.type === "layer" && e.event.status === "Pull complete") {
            write(`${e.event.id}: Pull complete\n`);
          }
          break;
        case "step-done": {
          // Stages running at once: the step named at the end, where docker's parsers of
          // " ---> ID" lines still find the id.
          const label = e.label ? ` [${e.label}]` : "";
          write(
            `${e.cached ? ` ---> Using cache${label}\n` : ""} ---> ${
              e.cached ? "CACHED " : ""
            }${e.id} (${(e.elapsedMs / 1000).toFixed(2)}s)${label}\n`,
          );
          break;
        }
        case "done":
          write(`Successfully built ${e.id.slice(7, 19)}\n`);
          for (const t of e.tags) write(`Successfully tagged ${familiar(t)}\n`);
          break;
      }
    },
    failed() {},
    finished(ms) {
      if (!quiet) write(`Build finished in ${(ms / 1000).toFixed(2)}s\n`);
    },
  };
}

/** One step as a BuildKit vertex. */
interface Vertex {
  readonly n: number;
  readonly name: string;
  readonly started: number;
  /** The start of a line not yet ended. */
  partial: Uint8Array;
  done: boolean;
}

/** BuildKit's plain progress. `now` is the clock (ms). */
export function plainPrinter(sink: Sink, now: () => number = Date.now): BuildPrinter {
  const write = writer(sink);
  const vertices = new Map<number, Vertex>();
  let count = 0;
  /** The step that pulls run under (a FROM's). */
  let current: Vertex | undefined;
  const line = (v: Vertex, text: Uint8Array) => {
    const secs = ((now() - v.started) / 1000).toFixed(3);
    write(`#${v.n} ${secs} `);
    write(text);
    write("\n");
  };
  const flush = (v: Vertex) => {
    if (v.partial.length > 0) line(v, v.partial);
    v.partial = new Uint8Array();
  };
  return {
    event(e) {
      switch (e.type) {
        case "warning":
          write(`WARNING: ${e.message}\n`);
          break;
        case "step": {
          const name = `${e.vertex ?? `[${e.step}/${e.total}]`} ${e.instruction}`;
          const v: Vertex = {
            n: ++count,
            name,
            started: now(),
            partial: new Uint8Array(),
            done: false,
          };
          vertices.set(e.step, v);
          current = v;
          write(`#${v.n} ${name}\n`);
          break;
        }
        case "pull": {
          // BuildKit lists a base image's layers under the FROM that fetches them.
          const p = e.event;
          if (!current) break;
          const secs = ((now() - current.started) / 1000).toFixed(3);
          if (p.type === "resolved") {
            write(`#${current.n} ${secs} resolve ${p.reference}@${p.digest} done\n`);
          } else if (p.status === "Pull complete" || p.status === "Already exists") {
            write(`#${current.n} ${secs} sha256:${p.id} ${p.status.toLowerCase()}\n`);
          }
          break;
        }
        case "output": {
          const v = e.step === undefined ? undefined : vertices.get(e.step);
          if (!v) {
            write(e.data);
            break;
          }
          let data = v.partial.length > 0 ? concat(v.partial, e.data) : e.data;
          for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10)) {
            line(v, data.subarray(0, i));
            data = data.subarray(i + 1);
          }
          v.partial = data.slice();
          break;
        }
        case "step-done": {
          const v = vertices.get(e.step);
          if (!v) break;
          flush(v);
          v.done = true;
          write(
            e.cached
              ? `#${v.n} CACHED\n\n`
              : `#${v.n} DONE ${(e.elapsedMs / 1000).toFixed(1)}s\n\n`,
          );
          break;
        }
        case "done": {
          const n = ++count;
          write(`#${n} exporting to image\n#${n} writing image ${e.id} done\n`);
          for (const t of e.tags) write(`#${n} naming to ${t} done\n`);
          write(`#${n} DONE 0.0s\n`);
          break;
        }
      }
    },
    failed(err) {
      for (const v of vertices.values()) {
        if (v.done) continue;
        flush(v);
        write(`#${v.n} ERROR: ${err.message}\n`);
        write(`------\n > ${v.name}:\n------\n`);
      }
    },
    finished() {},
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function base64(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * BuildKit's `rawjson`: its SolveStatus objects, one a line (`vertexes` with digest, name,
 * started, completed, cached; `logs` with vertex, stream 1 and base64 data).
 */
export function rawJsonPrinter(sink: Sink, now: () => number = Date.now): BuildPrinter {
  const write = writer(sink);
  const vertices = new Map<number, { digest: string; name: string; started: string }>();
  const completed = new Set<number>();
  const emit = (o: unknown) => write(`${JSON.stringify(o)}\n`);
  const time = () => new Date(now()).toISOString();
  return {
    event(e) {
      switch (e.type) {
        case "step": {
          const name = `${e.vertex ?? `[${e.step}/${e.total}]`} ${e.instruction}`;
          // A vertex digest of its own per step: BuildKit's digest of its LLB op is not known here.
          const hex = Array.from(
            enc.encode(`${e.step}\0${name}`),
          ).reduce((h, b) => (Math.imul(h, 31) + b) >>> 0, 7).toString(16).padStart(8, "0");
          const v = { digest: `sha256:${hex.repeat(8)}`, name, started: time() };
          vertices.set(e.step, v);
          emit({ vertexes: [v] });
          break;
        }
        case "output": {
          const v = e.step === undefined ? undefined : vertices.get(e.step);
          if (!v) break;
          emit({
            logs: [{ vertex: v.digest, stream: 1, data: base64(e.data), timestamp: time() }],
          });
          break;
        }
        case "step-done": {
          const v = vertices.get(e.step);
          completed.add(e.step);
          if (v) {
            emit({
              vertexes: [{ ...v, completed: time(), ...(e.cached ? { cached: true } : {}) }],
            });
          }
          break;
        }
        case "warning":
          emit({ warnings: [{ level: 1, short: base64(enc.encode(e.message)) }] });
          break;
      }
    },
    failed(err) {
      for (const [step, v] of vertices) {
        if (!completed.has(step)) {
          emit({ vertexes: [{ ...v, completed: time(), error: err.message }] });
        }
      }
    },
    finished() {},
  };
}
