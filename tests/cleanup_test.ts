/**
 * The suite's cleanup (tests/cleanup.ts) against a real running container: what a failing test
 * leaves is gone afterwards, and a bind-mounted host directory survives the removal (root).
 */
import { assertEquals, assertOk } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { mountsUnder, processesUsing, purgeRoot } from "./cleanup.ts";

Deno.test({
  name: "purgeRoot removes a running container, its supervisor and mounts, keeps a bind source",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    const host = await Deno.makeTempDir({ prefix: "tsbox-bind-" });
    try {
      await Deno.writeTextFile(`${host}/keep`, "host file\n");
      await seedStore(root);
      const run = await tsbox(
        ["run", "-d", "--name", "t-left", "-v", `${host}:/data`, "busybox", "sleep", "300"],
        { root },
      );
      assertEquals(run.code, 0, run.stderr);
      const inspect = await tsbox(["inspect", "t-left"], { root });
      const pid = JSON.parse(inspect.stdout)[0].State.Pid as number;
      // What a test that failed here would have left behind.
      assertOk(processesUsing(root).length > 0, "the supervisor names the root");
      // The overlay is mounted on the host; the bind mount lives in the container's namespace.
      assertEquals(mountsUnder(root).length, 1, "the rootfs overlay");

      await purgeRoot(root);
      assertEquals(processesUsing(root), []);
      assertEquals(mountsUnder(root), []);
      const stat = (() => {
        try {
          return Deno.readTextFileSync(`/proc/${pid}/stat`);
        } catch {
          return "";
        }
      })();
      assertOk(stat === "" || stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z", "PID 1 is dead");
      assertEquals(await Deno.stat(root).then(() => "exists", () => "gone"), "gone");
      assertEquals(await Deno.readTextFile(`${host}/keep`), "host file\n");
    } finally {
      await cleanup();
      await Deno.remove(host, { recursive: true });
    }
  },
});

Deno.test({
  name: "purgeRoot kills processes on the root and unmounts what no container record names",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    const host = await Deno.makeTempDir({ prefix: "tsbox-bind-" });
    const sleeper = new Deno.Command("sh", { args: ["-c", "sleep 300", root] }).spawn();
    try {
      await Deno.writeTextFile(`${host}/keep`, "host file\n");
      await Deno.mkdir(`${root}/containers/x/rootfs`, { recursive: true });
      const bind = await new Deno.Command("mount", {
        args: ["--bind", host, `${root}/containers/x/rootfs`],
      }).output();
      assertOk(bind.success);
      assertEquals(mountsUnder(root), [`${root}/containers/x/rootfs`]);
      assertEquals(processesUsing(root), [sleeper.pid]);

      await purgeRoot(root);
      assertEquals((await sleeper.status).signal, "SIGKILL");
      assertEquals(mountsUnder(root), []);
      assertEquals(await Deno.stat(root).then(() => "exists", () => "gone"), "gone");
      assertEquals(await Deno.readTextFile(`${host}/keep`), "host file\n");
    } finally {
      try {
        sleeper.kill("SIGKILL");
      } catch { /* already dead */ }
      await sleeper.status;
      await cleanup();
      await Deno.remove(host, { recursive: true });
    }
  },
});
