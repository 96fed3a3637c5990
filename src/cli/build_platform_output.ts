/**
 * The classic build output of several platforms built at the same time: each platform's lines
 * go out whole, prefixed by the platform (`[linux/arm64] Step 2/3 : RUN ...`), as BuildKit's
 * plain progress names a multi-platform build's vertices, so the interleaved builds stay
 * readable.
 *
 * @module
 */
import type { Sink } from "./build_progress.ts";

const enc = new TextEncoder();
const NL = 0x0a;

/** A {@link Sink} that writes whole lines to `sink`, each prefixed; `flush` ends a partial one. */
export interface PrefixedSink extends Sink {
  flush(): void;
}

/** Lines written to the result go to `sink` with `[prefix] ` before each. */
export function prefixedSink(sink: Sink, prefix: string): PrefixedSink {
  const head = enc.encode(`[${prefix}] `);
  let partial: Uint8Array = new Uint8Array();
  const writeAll = (data: Uint8Array) => {
    while (data.length > 0) data = data.subarray(sink.writeSync(data));
  };
  const line = (body: Uint8Array) => {
    // One write per line, so that another platform's line cannot land inside it.
    const out = new Uint8Array(head.length + body.length + 1);
    out.set(head);
    out.set(body, head.length);
    out[out.length - 1] = NL;
    writeAll(out);
  };
  return {
    writeSync(p) {
      let data = p;
      for (let i = data.indexOf(NL); i >= 0; i = data.indexOf(NL)) {
        const body = partial.length === 0
          ? data.subarray(0, i)
          : concat(partial, data.subarray(0, i));
        partial = new Uint8Array();
        line(body);
        data = data.subarray(i + 1);
      }
      if (data.length > 0) partial = concat(partial, data);
      return p.length;
    },
    flush() {
      if (partial.length > 0) line(partial);
      partial = new Uint8Array();
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
