/**
 * The commands that read a container's state: state, list, ps. podman and containerd call
 * them on every container, so this module imports only the state record and the cgroup, not
 * the config and security modules of info.ts.
 *
 * @module
 */
import { ociCgroup } from "../runtime/oci_cgroup.ts";
import { type RuncContext, str } from "./context.ts";
import { checkId, listIds, processAlive, readRecord, stateJson } from "./state.ts";

/** `state ID`: the runtime-spec state JSON. */
export async function state(ctx: RuncContext): Promise<number> {
  const rec = await readRecord(ctx.root, checkId(ctx.args[0]));
  console.log(JSON.stringify(stateJson(ctx.root, rec), null, "  "));
  return 0;
}

/** The login name (or uid) owning container `id`'s state dir, as runc's list shows it. */
function ownerOf(root: string, id: string): string {
  let uid: number | null;
  try {
    uid = Deno.statSync(`${root}/${id}`).uid;
  } catch {
    return "";
  }
  try {
    const entry = Deno.readTextFileSync("/etc/passwd").split("\n").map((l) => l.split(":"))
      .find((f) => f[2] === String(uid));
    if (entry) return entry[0];
  } catch { /* no passwd */ }
  return String(uid);
}

/** `list [--format json] [-q]`. */
export async function listCommand(ctx: RuncContext): Promise<number> {
  const states: Record<string, unknown>[] = [];
  for (const id of listIds(ctx.root)) {
    try {
      states.push({
        ...stateJson(ctx.root, await readRecord(ctx.root, id)),
        owner: ownerOf(ctx.root, id),
      });
    } catch { /* a container being created or deleted right now */ }
  }
  if (ctx.flags.quiet === true) {
    for (const s of states) console.log(s.id);
  } else if (str(ctx.flags, "format") === "json") {
    console.log(JSON.stringify(states));
  } else {
    const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]];
    for (const s of states) {
      rows.push([s.id, s.pid, s.status, s.bundle, s.created, s.owner].map(String));
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd());
  }
  return 0;
}

/** `ps [--format json] ID`: the pids in the container's cgroup. */
export async function ps(ctx: RuncContext): Promise<number> {
  const rec = await readRecord(ctx.root, checkId(ctx.args[0]));
  // Without a cgroup (rootless), the container's first process is what is known of it.
  const pids = rec.cgroupPath
    ? (await ociCgroup(rec.cgroupPath).pids()).sort((a, b) => a - b)
    : processAlive(rec)
    ? [rec.pid]
    : [];
  if (str(ctx.flags, "format") === "json") {
    console.log(JSON.stringify(pids));
    return 0;
  }
  console.log("PID     CMD");
  for (const pid of pids) {
    let cmd = "";
    try {
      cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
    } catch { /* gone */ }
    console.log(`${String(pid).padEnd(8)}${cmd}`);
  }
  return 0;
}
