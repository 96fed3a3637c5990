/**
 * `ctr run -t` through containerd's runc shim with tsbox's OCI runtime (root): ctr, in a real
 * terminal (tmux), gets the container's pty, which the runtime sends over the shim's
 * `--console-socket`; the shim reads create's output to its end before it takes the pty, so a
 * runtime whose waiting container still holds create's stdout or stderr hangs here (runc's
 * does not). `TSBOX_TEST_RUNC=/usr/sbin/runc` runs it against runc.
 */
import { assertOk, assertStringIncludes } from "./assert.ts";
import { nothingLeft, settledLeftovers, startContainerd } from "./containerd.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { runcBinary } from "./runc_bin.ts";
import { hasTmux, Tmux } from "./tmux.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "containerd's runc shim gets the terminal of `ctr run -t` from tsbox's runtime",
  ignore: !isRoot || !hasTmux,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fx = await fixtureRegistry();
    const h = await startContainerd();
    let term: Tmux | undefined;
    try {
      const runtime = await runcBinary(h.dir);
      await h.pull(fx.refs.busybox);
      // The runtime sends the pty's master over the shim's console socket; ctr, in tmux's
      // terminal, copies it both ways and sizes it as its own terminal (120x40).
      const ctr = [
        "ctr",
        "--address",
        h.address,
        "run",
        "-t",
        "--rm",
        ...h.taskFlags(runtime, "t-ctr-tty"),
        fx.refs.busybox,
        "t-ctr-tty",
        "sh",
      ].join(" ");
      term = await Tmux.start(`sh -c '${ctr}; echo ctr-exit=$?; sleep 600'`);
      await term.waitFor(/# ?$/m);
      await term.send("tty; stty size; echo in-$((6*7))", "Enter");
      const seen = await term.waitFor(/^in-42/m);
      assertStringIncludes(seen, "/dev/pts/0\n");
      assertStringIncludes(seen, "40 120\n");
      await term.send("exit 7", "Enter");
      await term.waitFor(/^ctr-exit=7$/m);
      const after = await settledLeftovers(h);
      assertOk(nothingLeft(after), `left behind: ${JSON.stringify(after)}`);
    } finally {
      await term?.kill();
      await h.stop();
    }
  },
});
