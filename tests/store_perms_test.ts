/**
 * The store is root's alone (issue 20, escapes 1 and 5): as root, the test makes a store with a
 * setuid-root file in a layer, then a throwaway unprivileged host user tries what the attack
 * did: list the store, run the setuid file from the layer, read the database (which holds
 * containers' environments). A store an older tsbox left 0711 with a 0644 database is first
 * attacked as it is (the user gets in), then tightened by the next tsbox command.
 */
import { join } from "node:path";
import { assertEquals, assertOk } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { seedStore } from "./busybox_store.ts";

const isRoot = Deno.uid() === 0;

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Runs a command as a throwaway user with no home and no groups besides its own. */
type AsUser = (cmd: string, args: string[]) => Promise<{ code: number; out: string }>;

async function withUser(fn: (asUser: AsUser) => Promise<void>): Promise<void> {
  const name = `tsbsp${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  await sh("useradd", ["-M", "-s", "/bin/sh", name]);
  try {
    const uid = (await sh("id", ["-u", name])).trim();
    const gid = (await sh("id", ["-g", name])).trim();
    await fn(async (cmd, args) => {
      const out = await new Deno.Command("setpriv", {
        // Through a shell: setpriv itself still holds root's capabilities when it execs, so
        // only a process started by the user shows what the user can reach.
        args: [
          `--reuid=${uid}`,
          `--regid=${gid}`,
          "--clear-groups",
          "--",
          "/bin/sh",
          "-c",
          'exec "$@"',
          "sh",
          cmd,
          ...args,
        ],
        cwd: "/",
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
    });
  } finally {
    await sh("userdel", [name]).catch((err) => console.error(String(err)));
  }
}

/**
 * A store at `<open dir>/store` seeded with busybox, with `suidprobe` (coreutils' `id`, setuid
 * root: run by a user it prints `euid=0`) in its layer. The parent is 0755, as /var/lib is, so only the store's own modes keep users out.
 */
async function withStore(
  fn: (s: { root: string; probe: string; db: string }) => Promise<void>,
): Promise<void> {
  const parent = await Deno.makeTempDir({ prefix: "tsbox-perms-" });
  try {
    await Deno.chmod(parent, 0o755);
    const root = join(parent, "store");
    const { layerDir } = await seedStore(root);
    const probe = join(layerDir, "suidprobe");
    await Deno.copyFile("/usr/bin/id", probe);
    await Deno.chmod(probe, 0o4755);
    await fn({ root, probe, db: join(root, "tsbox.db") });
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o7777;
}

/** What the attacker gets: a listing, a run of the setuid file, the database's first bytes. */
async function attack(asUser: AsUser, s: { root: string; probe: string; db: string }) {
  return {
    list: (await asUser("ls", [s.root])).code === 0,
    listLayers: (await asUser("ls", [join(s.root, "layers")])).code === 0,
    exec: (await asUser(s.probe, [])).out.includes("euid=0"),
    readDb: (await asUser("head", ["-c", "16", s.db])).code === 0,
  };
}

const NOTHING = { list: false, listLayers: false, exec: false, readDb: false };

Deno.test({
  name: "another host user can list, run and read nothing of a store tsbox made",
  ignore: !isRoot,
  async fn() {
    await withStore(async (s) => {
      // The store is used the way a user uses it: the command opens it like any other.
      const r = await tsbox(["images", "-q"], { root: s.root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(mode(s.root), 0o700);
      assertEquals(mode(join(s.root, "layers")), 0o700);
      assertEquals(mode(join(s.root, "l")), 0o700);
      for (const f of ["tsbox.db", "tsbox.db-wal", "tsbox.db-shm"]) {
        try {
          assertEquals(mode(join(s.root, f)), 0o600, f);
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
      // Root can do all of it: the paths the user is refused are real.
      assertOk((await new Deno.Command(s.probe).output()).success);
      await withUser(async (asUser) => {
        assertEquals(await attack(asUser, s), NOTHING);
      });
    });
  },
});

Deno.test({
  name: "a store an older tsbox left 0711 with a 0644 database is tightened on first use",
  ignore: !isRoot,
  async fn() {
    await withStore(async (s) => {
      // How a store looked before: every directory on the way 0711, the database 0644.
      for (const d of ["", "layers", "l", "blobs", "blobs/sha256"]) {
        await Deno.mkdir(join(s.root, d), { recursive: true });
        await Deno.chmod(join(s.root, d), 0o711);
      }
      await Deno.chmod(s.db, 0o644);
      await withUser(async (asUser) => {
        // The attack works on such a store (the test would prove nothing otherwise)...
        const before = await attack(asUser, s);
        assertEquals([before.exec, before.readDb], [true, true]);
        const r = await tsbox(["ps", "-a", "-q"], { root: s.root });
        assertEquals(r.code, 0, r.stderr);
        // ...and no longer once tsbox ran.
        assertEquals(await attack(asUser, s), NOTHING);
      });
      assertEquals(mode(s.root), 0o700);
      for (const d of ["layers", "l", "blobs", "blobs/sha256"]) {
        assertEquals(mode(join(s.root, d)), 0o700, d);
      }
      assertEquals(mode(s.db), 0o600);
    });
  },
});
