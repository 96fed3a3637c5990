/**
 * runc's log: `--log FILE` gets one line per message, as JSON
 * (`{"level":"error","msg":"...","time":"..."}`) with `--log-format json` or logrus's text form
 * otherwise; containerd's shim and conmon read the last error line from it. Errors and
 * warnings also go to stderr (what a person at a terminal and conmon's pipe see); debug lines
 * only with `--debug`.
 *
 * @module
 */

/** Where messages go. */
export class RuncLog {
  constructor(
    readonly file: string | undefined,
    readonly format: "json" | "text",
    readonly debugOn: boolean,
  ) {}

  #write(level: string, msg: string): void {
    if (!this.file) return;
    const time = new Date().toISOString();
    const line = this.format === "json"
      ? JSON.stringify({ level, msg, time })
      : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
    try {
      Deno.writeTextFileSync(this.file, `${line}\n`, { append: true, create: true });
    } catch { /* a log that cannot be written must not hide the error itself */ }
  }

  /** An error: the log and stderr. */
  error(msg: string): void {
    this.#write("error", msg);
    console.error(this.file && this.format === "json" ? msg : `ERRO[0000] ${msg}`);
  }

  /** A warning: the log and stderr. */
  warn(msg: string): void {
    this.#write("warning", msg);
    console.error(`WARN[0000] ${msg}`);
  }

  /** A debug line (with --debug). */
  debug(msg: string): void {
    if (!this.debugOn) return;
    this.#write("debug", msg);
  }
}
