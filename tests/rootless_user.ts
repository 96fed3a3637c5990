/**
 * A throwaway login for rootless tests (root makes it, the test runs tsbox as it): a home,
 * a copy of Deno's module cache it may read and write, optionally a subordinate id range, all
 * removed afterwards (with any range a failed test would otherwise leave in /etc/subuid).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { assertEquals } from "./assert.ts";
import { freeRange, parseSubIds } from "../src/runtime/userns.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs a program as root; its stdout, or an error with its stderr. */
export async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** A throwaway login: home, ids, a copy of Deno's cache it can read and write. */
export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly denoDir: string;
}

function mentions(path: string, name: string): boolean {
  return parseSubIds(Deno.readTextFileSync(path)).some((e) => e.name === name);
}

/** Runs `fn` with a new user (prefix `tsbrl`), removed afterwards whatever happens. */
export async function withUser(fn: (u: TestUser) => Promise<void>): Promise<void> {
  const name = `tsbrl${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  // No automatic subordinate range (login.defs may assign one): the test adds its own.
  await run("useradd", [
    "-m",
    "-s",
    "/bin/sh",
    "-K",
    "SUB_UID_COUNT=0",
    "-K",
    "SUB_GID_COUNT=0",
    name,
  ]);
  try {
    const uid = Number((await run("id", ["-u", name])).trim());
    const gid = Number((await run("id", ["-g", name])).trim());
    const home = (await run("getent", ["passwd", name])).trim().split(":")[5];
    // Deno's module cache (npm packages) copied for the user: nothing of root's is opened up.
    const info = JSON.parse(await run(Deno.execPath(), ["info", "--json"]));
    const denoDir = join(home, ".cache", "deno");
    await Deno.mkdir(denoDir, { recursive: true });
    for (const sub of ["npm", "remote"]) {
      try {
        await Deno.stat(join(info.denoDir, sub));
      } catch {
        continue;
      }
      await run("cp", ["-a", join(info.denoDir, sub), denoDir]);
    }
    await run("chown", ["-R", `${uid}:${gid}`, join(home, ".cache")]);
    await fn({ name, uid, gid, home, denoDir });
  } finally {
    // A supervisor that is still on its way out keeps the user "in use" for a moment.
    for (let i = 0;; i++) {
      try {
        await run("userdel", ["-r", name]);
        break;
      } catch (err) {
        if (i === 50) {
          console.error(String(err));
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const [file, flag] of [["/etc/subuid", "-v"], ["/etc/subgid", "-w"]] as const) {
      if (!mentions(file, name)) continue;
      const e = parseSubIds(Deno.readTextFileSync(file)).find((e) => e.name === name)!;
      await run("usermod", [flag, `${e.start}-${e.start + e.count - 1}`, name]).catch(() => {});
      const text = Deno.readTextFileSync(file).split("\n")
        .filter((l) => !l.startsWith(`${name}:`)).join("\n");
      Deno.writeTextFileSync(file, text);
    }
  }
}

/** Gives the user a fresh 65536-id subordinate range; returns its first id and its text. */
export async function addRange(u: TestUser): Promise<{ start: number; range: string }> {
  const start = Math.max(
    freeRange(parseSubIds(Deno.readTextFileSync("/etc/subuid"))),
    freeRange(parseSubIds(Deno.readTextFileSync("/etc/subgid"))),
  );
  const range = `${start}-${start + 65535}`;
  await run("usermod", ["--add-subuids", range, "--add-subgids", range, u.name]);
  return { start, range };
}

/** What a tsbox command run as the user did. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tsbox ARGS` (main.ts) as the user, with a login-like environment plus `env`. */
export async function asUser(
  u: TestUser,
  args: string[],
  env: Record<string, string> = {},
): Promise<Result> {
  const out = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "--",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      "--cached-only",
      MAIN,
      ...args,
    ],
    cwd: u.home,
    clearEnv: true,
    env: {
      HOME: u.home,
      USER: u.name,
      PATH: `${dirname(Deno.execPath())}:/usr/local/bin:/usr/bin:/bin`,
      DENO_DIR: u.denoDir,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `r`, after checking that it exited 0 (the message names `what` and its stderr). */
export function ok(r: Result, what: string): Result {
  assertEquals(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return r;
}
