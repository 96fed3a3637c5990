/**
 * Resolving `--user` (docker's `uid[:gid]` or `name[:group]`) against the image's own
 * /etc/passwd and /etc/group, as docker does, including supplementary groups and HOME.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** The identity the container's process runs as. */
export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (from /etc/group membership by name). */
  readonly groups: readonly number[];
  /** Home directory from passwd, "/" when unknown. */
  readonly home: string;
  /** User name when passwd has one. */
  readonly name?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Parses /etc/passwd text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 7) continue;
    const uid = Number(f[2]), gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], uid, gid, home: f[5] });
  }
  return out;
}

/** Parses /etc/group text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 4) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: f[3].split(",").filter(Boolean) });
  }
  return out;
}

const numeric = /^[0-9]+$/;

/** A `--user` value the image cannot satisfy. */
export class UserError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/**
 * Resolves `spec` ("" means root) with the image's passwd and group contents (empty when the
 * image has none). Numeric ids need no entry; names must exist.
 */
export function resolveUser(spec: string, passwdText: string, groupText: string): ResolvedUser {
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  const [userPart, groupPart] = spec === "" ? ["0", undefined] : spec.split(":", 2);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (numeric.test(userPart)) {
    uid = Number(userPart);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) {
      throw new UserError(`unable to find user ${userPart}: no matching entries in passwd file`);
    }
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== "") {
    if (numeric.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) {
        throw new UserError(`unable to find group ${groupPart}: no matching entries in group file`);
      }
      gid = g.gid;
    }
  }
  const supplementary = entry
    ? groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid)
    : [];
  const all = [...new Set([gid, ...supplementary])];
  return { uid, gid, groups: all, home: entry?.home || "/", name: entry?.name };
}

/**
 * `--group-add` values as gids: numbers as they are, names looked up in the image's
 * /etc/group (docker's message when one is missing).
 */
export function resolveGroupAdd(values: readonly string[], groupText: string): number[] {
  const groups = parseGroup(groupText);
  return values.map((v) => {
    if (numeric.test(v)) return Number(v);
    const g = groups.find((x) => x.name === v);
    if (!g) throw new UserError(`Unable to find group ${v}: no matching entries in group file`);
    return g.gid;
  });
}
