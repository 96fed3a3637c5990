/**
 * SSH agent forwarding for `RUN --mount=type=ssh` (`build --ssh default|ID=SOCKET`, as buildx
 * takes it). A step never sees the user's agent socket itself: it gets a socket of its own,
 * made for the step with the mount's mode and owner on a directory of the build, whose
 * connections tsbox relays to the agent; the socket and its relay end with the step. The
 * agent's keys never leave it (the agent signs), so nothing of them reaches a layer.
 *
 * @module
 */
import { join } from "node:path";
import { UsageError } from "../errors.ts";

/** `--ssh` values by id: the agent socket each forwards. */
export type SshAgents = ReadonlyMap<string, string>;

/** Parses one `--ssh` value: `default`, `ID`, `ID=SOCKET` (one path; key files are refused). */
export function parseSshFlag(
  value: string,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): { id: string; socket: string } {
  const i = value.indexOf("=");
  const id = (i < 0 ? value : value.slice(0, i)).trim();
  if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new UsageError(`invalid --ssh ${value}: invalid id`);
  const paths = i < 0 ? [] : value.slice(i + 1).split(",").filter((p) => p !== "");
  if (paths.length > 1) {
    throw new UsageError(
      `invalid --ssh ${value}: one agent socket per id (key files are not supported)`,
    );
  }
  const socket = paths[0] ?? env("SSH_AUTH_SOCK");
  if (!socket) {
    throw new UsageError(`--ssh ${value}: no socket given and SSH_AUTH_SOCK is not set`);
  }
  return { id, socket };
}

/** Checks every socket is one (a key file is refused by name). */
export async function loadSshAgents(
  specs: readonly { id: string; socket: string }[],
): Promise<SshAgents> {
  const out = new Map<string, string>();
  for (const { id, socket } of specs) {
    if (out.has(id)) throw new UsageError(`--ssh ${id} given twice`);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(socket);
    } catch {
      throw new UsageError(`--ssh ${id}: ${socket}: no such agent socket`);
    }
    if (!info.isSocket) {
      throw new UsageError(
        `--ssh ${id}: ${socket} is not a socket (tsbox forwards a running ssh-agent; ` +
          `key files are not supported: ssh-add the key to an agent)`,
      );
    }
    out.set(id, socket);
  }
  return out;
}

/** A step's relay to an agent: the socket to mount, and how to end it. */
export interface SshRelay {
  /** The socket the step's container gets bound at the mount's target. */
  readonly socket: string;
  close(): Promise<void>;
}

/**
 * Listens on a new socket in `dir` (made here) with the given mode and owner, and relays each
 * connection to `agent`.
 */
export async function startSshRelay(
  agent: string,
  dir: string,
  access: { mode: number; uid: number; gid: number },
): Promise<SshRelay> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
  const socket = join(dir, "agent.sock");
  const listener = Deno.listen({ transport: "unix", path: socket });
  await Deno.chmod(socket, access.mode);
  // Rootless, the step's root is this user already, and another owner cannot be given.
  if (Deno.uid() === 0) await Deno.chown(socket, access.uid, access.gid);
  const open = new Set<Deno.Conn>();
  const relay = async (conn: Deno.UnixConn) => {
    open.add(conn);
    let upstream: Deno.UnixConn | undefined;
    try {
      upstream = await Deno.connect({ transport: "unix", path: agent });
      open.add(upstream);
      const up = upstream;
      await Promise.all([
        conn.readable.pipeTo(up.writable).catch(() => {}),
        up.readable.pipeTo(conn.writable).catch(() => {}),
      ]);
    } catch {
      // An agent gone away: the step's client sees its connection close.
    } finally {
      for (const c of [conn, upstream]) {
        if (!c) continue;
        open.delete(c);
        try {
          c.close();
        } catch { /* closed by its pipe already */ }
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) relay(conn);
    } catch { /* closed */ }
  })();
  return {
    socket,
    async close() {
      listener.close();
      await accepting;
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
