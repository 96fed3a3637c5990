/**
 * Bundles for tests of `tsbox runc` itself (hooks, seccomp flags, time namespaces): a busybox
 * root made from the host's busybox-static, runc's default spec from `tsbox runc spec`
 * adjusted by the test, the runtime called with its output in files, and each test module's
 * cgroups below `/PREFIX` removed afterwards.
 *
 * @module
 */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { runcBinary } from "./runc_bin.ts";
import type { Spec } from "../src/oci/spec.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

/** A test that needs root (skipped otherwise, never on CI, which runs as root). */
export function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** A module's scratch dir, busybox root and runtime executable. */
export interface Fixture {
  work: string;
  rootfs: string;
  runtime: string;
  /** Cgroups of this module's containers are below `/<cgroupPrefix>`. */
  cgroupPrefix: string;
}

const fixtures = new Map<string, Promise<Fixture>>();

/** Runs a host program; its stdout, or an error with its stderr. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** The fixture of `prefix` (made once per module). */
export function setup(prefix: string): Promise<Fixture> {
  if (fixtures.has(prefix)) return fixtures.get(prefix)!;
  const made = (async () => {
    const work = await Deno.makeTempDir({ prefix: `${prefix}-` });
    await Deno.chmod(work, 0o755);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(work, { recursive: true });
      } catch { /* gone */ }
    });
    const rootfs = join(work, "rootfs");
    for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "hooks"]) {
      await Deno.mkdir(join(rootfs, d), { recursive: true });
    }
    await Deno.copyFile("/bin/busybox", join(rootfs, "bin/busybox"));
    await Deno.chmod(join(rootfs, "bin/busybox"), 0o755);
    for (const a of (await sh("/bin/busybox", ["--list"])).split("\n")) {
      if (a && a !== "busybox") await Deno.symlink("busybox", join(rootfs, "bin", a));
    }
    await Deno.writeTextFile(
      join(rootfs, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n",
    );
    await Deno.writeTextFile(join(rootfs, "etc/group"), "root:x:0:\napp:x:1000:\n");
    // Only the container's root has this file at its top.
    await Deno.writeTextFile(join(rootfs, "in-rootfs"), "yes\n");
    return { work, rootfs, runtime: await runcBinary(work), cgroupPrefix: prefix };
  })();
  fixtures.set(prefix, made);
  return made;
}

/** A runtime call; output through files (a created container keeps the runtime's stdio). */
export async function rt(f: Fixture, state: string, args: string[]) {
  const out = join(f.work, `out-${crypto.randomUUID()}`);
  const status = await new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'o="$1"; shift; exec "$@" >"$o.out" 2>"$o.err"',
      "sh",
      out,
      f.runtime,
      "--root",
      state,
      ...args,
    ],
    stdin: "null",
  }).output();
  const read = async (ext: string) => {
    const text = await Deno.readTextFile(`${out}.${ext}`).catch(() => "");
    await Deno.remove(`${out}.${ext}`).catch(() => {});
    return text;
  };
  return { code: status.code, stdout: await read("out"), stderr: await read("err") };
}

/** runc's default spec (from `tsbox runc spec`) running `args`, cgroup /PREFIX/NAME. */
export async function bundle(
  f: Fixture,
  name: string,
  args: string[],
  change: (s: Spec) => Spec,
): Promise<string> {
  const dir = join(f.work, `b-${name}`);
  await Deno.mkdir(dir, { recursive: true });
  const r = await rt(f, join(f.work, "unused"), ["spec", "--bundle", dir]);
  assertEquals(r.code, 0, r.stderr);
  const spec = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as Spec;
  const base: Spec = {
    ...spec,
    process: { ...spec.process, terminal: false, args },
    root: { path: f.rootfs, readonly: false },
    linux: { ...spec.linux, cgroupsPath: `/${f.cgroupPrefix}/${name}` },
  };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(change(base)));
  return dir;
}

/** Whether the pids cgroup of container bundle `name` exists. */
export function cgroupExists(f: Fixture, name: string): boolean {
  try {
    Deno.statSync(`/sys/fs/cgroup/pids/${f.cgroupPrefix}/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** Removes the module's cgroups that are left. */
export function removeTestCgroups(f: Fixture): void {
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    const top = `/sys/fs/cgroup/${e.name}/${f.cgroupPrefix}`;
    try {
      for (const c of Deno.readDirSync(top)) {
        if (c.isDirectory) Deno.removeSync(`${top}/${c.name}`);
      }
      Deno.removeSync(top);
    } catch { /* none */ }
  }
}

/** Whether a process `pid` is alive (a zombie is not). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
