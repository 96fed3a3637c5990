/**
 * A real terminal for tests: a tmux server of our own (its own socket) running one command in a
 * 120x40 pane, driven with send-keys and read with capture-pane.
 *
 * @module
 */
const dec = new TextDecoder();

/** Whether tmux is installed. */
export const hasTmux: boolean = await new Deno.Command("tmux", { args: ["-V"] }).output()
  .then((o) => o.success).catch(() => false);

/** A tmux server running `command` in a 120x40 pane; text is read from the pane. */
export class Tmux {
  readonly socket = `tsbox-test-${crypto.randomUUID().slice(0, 8)}`;
  private constructor() {}

  /** Starts the server with `command` in session "t". */
  static async start(command: string): Promise<Tmux> {
    const t = new Tmux();
    await t.tmux(["new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command]);
    return t;
  }

  /** Runs a tmux command against this server. */
  async tmux(args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", { args: ["-L", this.socket, ...args] }).output();
    if (!out.success) throw new Error(`tmux ${args[0]}: ${dec.decode(out.stderr)}`);
    return dec.decode(out.stdout);
  }

  /** Types `keys` (tmux key names, e.g. "C-c", "Enter", or literal text). */
  send(...keys: string[]): Promise<string> {
    return this.tmux(["send-keys", "-t", "t", ...keys]);
  }

  /** Waits until the pane's text matches `pattern` (30 s at most); returns the text. */
  async waitFor(pattern: RegExp): Promise<string> {
    let text = "";
    for (let i = 0; i < 600; i++) {
      text = await this.tmux(["capture-pane", "-p", "-t", "t", "-S", "-100"]);
      if (pattern.test(text)) return text;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`pane never matched ${pattern}:\n${text}`);
  }

  /** Ends the server and everything in it. */
  async kill(): Promise<void> {
    await this.tmux(["kill-server"]).catch(() => "");
  }
}
