/**
 * RUN output of stages that run at the same time, kept readable: each line is prefixed with
 * its stage and step (`[builder 3/9] ...`, as BuildKit's plain progress names vertices), and
 * a partial line waits for its end so two steps never share a line.
 *
 * @module
 */

/** Splits one step's output into prefixed lines. */
export class PrefixedLines {
  readonly #prefix: Uint8Array;
  #partial: Uint8Array[] = [];

  constructor(prefix: string, private readonly emit: (data: Uint8Array) => void) {
    this.#prefix = new TextEncoder().encode(prefix);
  }

  /** Takes a chunk; emits every line it completes. */
  write(chunk: Uint8Array): void {
    let start = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, start)) {
      this.#line([...this.#partial, chunk.subarray(start, i + 1)]);
      this.#partial = [];
      start = i + 1;
    }
    if (start < chunk.length) this.#partial.push(chunk.slice(start));
  }

  /** Emits what is left of the last line, ended with a newline. */
  flush(): void {
    if (this.#partial.length === 0) return;
    this.#line([...this.#partial, new Uint8Array([10])]);
    this.#partial = [];
  }

  #line(parts: Uint8Array[]): void {
    const len = parts.reduce((n, p) => n + p.length, this.#prefix.length);
    const out = new Uint8Array(len);
    out.set(this.#prefix);
    let at = this.#prefix.length;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    this.emit(out);
  }
}
