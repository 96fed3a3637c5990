/**
 * Docker-style pull progress: one line per layer, redrawn in place with a bar on a terminal, and
 * one plain line per status change otherwise (logs, pipes, CI).
 *
 * @module
 */
import type { LayerStatus, PullEvent } from "../image/pull.ts";
import { humanSize } from "./format.ts";

const encoder = new TextEncoder();

/** Prints pull events to stderr-like output. */
export class PullProgress {
  readonly #tty: boolean;
  readonly #write: (s: string) => void;
  readonly #order: string[] = [];
  readonly #lines = new Map<string, string>();
  readonly #last = new Map<string, LayerStatus>();
  #drawn = 0;
  #lastDraw = 0;

  constructor(out: { isTerminal(): boolean; writeSync(b: Uint8Array): number } = Deno.stdout) {
    this.#tty = out.isTerminal();
    this.#write = (s) => {
      const bytes = encoder.encode(s);
      for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
    };
  }

  /** Handles one event. */
  event(e: PullEvent): void {
    if (e.type !== "layer") return;
    if (!this.#lines.has(e.id)) this.#order.push(e.id);
    const bar = e.status === "Downloading" && e.total
      ? ` ${progressBar(e.current ?? 0, e.total)}`
      : "";
    this.#lines.set(e.id, `${e.id}: ${e.status}${bar}`);
    if (this.#tty) {
      const now = Date.now();
      if (e.status === "Downloading" && now - this.#lastDraw < 100) return;
      this.#lastDraw = now;
      this.#redraw();
    } else if (this.#last.get(e.id) !== e.status) {
      this.#last.set(e.id, e.status);
      this.#write(`${e.id}: ${e.status}\n`);
    }
  }

  /** Draws the final state (terminal only). */
  finish(): void {
    if (this.#tty) this.#redraw();
  }

  #redraw(): void {
    let s = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const id of this.#order) s += `\x1b[2K${this.#lines.get(id)}\n`;
    this.#drawn = this.#order.length;
    this.#write(s);
  }
}

function progressBar(current: number, total: number): string {
  const width = 50;
  const filled = Math.min(width, Math.floor((current / total) * width));
  const arrow = filled < width ? ">" : "";
  return `[${"=".repeat(Math.max(0, filled - arrow.length))}${arrow}${
    " ".repeat(width - filled)
  }] ${humanSize(current)}/${humanSize(total)}`;
}
