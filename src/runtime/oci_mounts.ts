/**
 * The `mounts` of an OCI config.json, in order, as the container's first process makes them
 * (before pivot_root), and /dev as runc fills it: the default nodes, the spec's devices and the
 * standard links.
 *
 * Where a mount lands is decided by the parent, never by the child following a path: a target
 * in the image's files is resolved inside the rootfs with its symlinks followed there
 * (rootfs.ts `ensureMountTarget`), so a hostile image or config cannot point a mount outside
 * it. A target below an earlier mount of a fresh filesystem (`/dev/pts` below `/dev`'s tmpfs)
 * does not exist yet when the parent looks: the child creates it on that filesystem, which it
 * mounted itself a moment before and which holds no symlink of the image's; proc's magic
 * links (`self`, pids) are refused there. A target below an earlier bind mount is resolved in
 * that bind's source.
 *
 * @module
 */
import { IGNORE_ERROR, type Op, str } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { Device, Mount } from "../oci/spec.ts";
import { type CgroupLayout, hostLayout } from "./cgroups.ts";
import { OciConfigError } from "./oci_config.ts";
import { MOUNT_FLAGS as F, type MountOptions, parseMountOptions } from "./oci_mount_options.ts";
import { ensureMountTarget, resolveInRoot } from "./rootfs.ts";

const AT_FDCWD = -100;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const SYS_FCHOWNAT = 260;
const MS_MOVE = 0x2000;

/** One mount as the child makes it: everything resolved to host paths by the parent. */
export interface ResolvedMount {
  readonly destination: string;
  /** Where it lands, as the child sees it before pivot_root. */
  readonly target: string;
  readonly source: string;
  /** Filesystem type; "" for binds. */
  readonly fstype: string;
  readonly options: MountOptions;
  /** Directories (and a file, for `file`) the child creates first, on a fresh filesystem. */
  readonly create: readonly string[];
  /** The last entry of `create` is a file (a bind of a file), not a directory. */
  readonly createFile: boolean;
  /** A `cgroup` mount: the cgroup hierarchies to bind below it. */
  readonly cgroupBinds?: readonly { readonly name: string; readonly source: string }[];
}

/** What the parent resolved for the child's mount ops. */
export interface MountPlan {
  readonly mounts: readonly ResolvedMount[];
  /** Host path (child view) of /dev when it is a fresh tmpfs the runtime fills, else undefined. */
  readonly freshDev?: string;
  /** Whether /dev/pts is a devpts mount (then /dev/ptmx links to pts/ptmx). */
  readonly devpts: boolean;
  /** Device nodes to create: child-view path and the node. */
  readonly devices: readonly {
    readonly target: string;
    readonly create: readonly string[];
    readonly device: Device;
    /** The host's node to bind where mknod is refused (a user namespace). */
    readonly source: string;
  }[];
}

/** Major and minor of a Linux dev_t. */
function splitDev(rdev: number): [number, number] {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return [major, minor];
}

function isNode(path: string, d: Device): boolean {
  try {
    const st = Deno.statSync(path);
    if (!(d.type === "b" ? st.isBlockDevice : st.isCharDevice) || st.rdev === null) return false;
    const [major, minor] = splitDev(st.rdev);
    return major === d.major && minor === d.minor;
  } catch {
    return false;
  }
}

/**
 * The host's node for `d`, to bind in a user namespace: its own path when that is the same
 * node, else the node of that number under /dev (`--device /dev/sda:/dev/xvda`), else its path
 * (the bind then fails naming it).
 */
function hostNode(d: Device): string {
  if (d.type === "p" || d.major === undefined || d.minor === undefined || isNode(d.path, d)) {
    return d.path;
  }
  const dirs = ["/dev"];
  for (let i = 0; i < dirs.length && i < 64; i++) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dirs[i])];
    } catch {
      continue;
    }
    for (const e of entries) {
      const path = `${dirs[i]}/${e.name}`;
      if (e.isDirectory && dirs[i] === "/dev") dirs.push(path);
      else if (!e.isDirectory && !e.isSymlink && isNode(path, d)) return path;
    }
  }
  return d.path;
}

function under(parent: string, path: string): boolean {
  return parent === "/" || path === parent || path.startsWith(`${parent}/`);
}

function clean(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new OciConfigError(`path ${path} contains ..`);
  return `/${parts.join("/")}`;
}

/** Resolves the mounts of `spec` in `rootfs` (creating targets in the image where needed). */
export function planMounts(
  rootfs: string,
  mounts: readonly Mount[],
  devices: readonly Device[],
  cgroupPath: string,
  options: { readonly layout?: CgroupLayout; readonly sourceIsDir?: (p: string) => boolean } = {},
): MountPlan {
  const isDir = options.sourceIsDir ?? ((p: string) => {
    try {
      return Deno.statSync(p).isDirectory;
    } catch {
      return true;
    }
  });
  let layout = options.layout;
  const layoutOf = () => layout ??= hostLayout();
  const done: ResolvedMount[] = [];
  /** Where a container path lands for the child, and what it must create there. */
  const place = (dest: string, kind: "dir" | "file") => {
    const parent = [...done].reverse().find((m) =>
      m.destination !== dest && under(m.destination, dest)
    );
    if (!parent) return { target: ensureMountTarget(rootfs, dest, kind), create: [] as string[] };
    const rest = dest.slice(parent.destination === "/" ? 0 : parent.destination.length)
      .split("/").filter(Boolean);
    if (parent.options.bind) {
      // Resolved in the bind's source, which is what the child sees there.
      const inSource = ensureMountTarget(parent.source, `/${rest.join("/")}`, kind);
      return { target: `${parent.target}${inSource.slice(parent.source.length)}`, create: [] };
    }
    if (
      parent.fstype === "proc" &&
      rest.some((c) => c === "self" || c === "thread-self" || /^[0-9]+$/.test(c))
    ) {
      throw new OciConfigError(`mount destination ${dest} goes through a /proc magic link`);
    }
    const create: string[] = [];
    let at = parent.target;
    for (const c of rest) {
      at = `${at}/${c}`;
      create.push(at);
    }
    return { target: at, create };
  };
  for (const m of mounts) {
    const destination = clean(m.destination);
    if (destination === "/") {
      throw new OciConfigError("a mount over / is not supported (use root.path)");
    }
    const type = m.type ?? (m.options?.some((o) => o === "bind" || o === "rbind") ? "bind" : "");
    const options = parseMountOptions(type, m.options ?? [], destination);
    if (!options.bind && type === "") {
      throw new OciConfigError(`mount ${destination} has no type`);
    }
    const source = m.source ?? "";
    if (options.bind && !source.startsWith("/")) {
      throw new OciConfigError(`bind mount ${destination} needs an absolute source`);
    }
    const kind = options.bind && !isDir(source) ? "file" : "dir";
    const { target, create } = place(destination, kind);
    let cgroupBinds: ResolvedMount["cgroupBinds"];
    let fstype = options.bind ? "" : type;
    if (type === "cgroup" || type === "cgroup2") {
      cgroupBinds = cgroupHierarchies(cgroupPath, layoutOf());
      fstype = "tmpfs";
    }
    done.push({
      destination,
      target,
      source: options.bind
        ? source
        : (fstype === "tmpfs" && cgroupBinds ? "tmpfs" : source || type),
      fstype,
      options,
      create,
      createFile: kind === "file" && create.length > 0,
      cgroupBinds,
    });
  }
  const dev = [...done].reverse().find((m) => m.destination === "/dev");
  const freshDev = dev && dev.fstype === "tmpfs" ? dev.target : undefined;
  const devpts = done.some((m) => m.destination === "/dev/pts" && m.fstype === "devpts");
  const nodes = devices.map((d) => {
    const path = clean(d.path);
    if (!path.startsWith("/dev/")) throw new OciConfigError(`device ${d.path} is not below /dev`);
    if (freshDev) {
      const parts = path.slice("/dev/".length).split("/");
      const create = parts.slice(0, -1).map((_, i) =>
        `${freshDev}/${parts.slice(0, i + 1).join("/")}`
      );
      const target = `${freshDev}/${parts.join("/")}`;
      return { target, create, device: d, source: hostNode(d) };
    }
    const target = resolveInRoot(rootfs, path);
    Deno.mkdirSync(target.slice(0, target.lastIndexOf("/")), { recursive: true, mode: 0o755 });
    return { target, create: [], device: d, source: hostNode(d) };
  });
  return { mounts: done, freshDev, devpts, devices: nodes };
}

/** The container's own directory in each hierarchy, bound below a `cgroup` mount. */
function cgroupHierarchies(
  path: string,
  layout: CgroupLayout,
): { name: string; source: string }[] {
  const byMount = new Map<string, string[]>();
  for (const [controller, mount] of layout.v1) {
    byMount.set(mount, [...(byMount.get(mount) ?? []), controller]);
  }
  const out = [...byMount].map(([mount]) => ({
    name: mount.slice(mount.lastIndexOf("/") + 1),
    source: `${mount}${path}`,
  }));
  if (out.length === 0 && layout.v2) out.push({ name: "", source: `${layout.v2}${path}` });
  return out;
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

function mountOp(source: string, target: string, fstype: string, flags: number, data = ""): Op {
  const what = fstype ? `mount ${fstype} on ${target}` : `bind ${source} on ${target}`;
  return op(SYS.mount, what, [str(source), str(target), str(fstype), flags, data ? str(data) : 0]);
}

function createOps(paths: readonly string[], lastIsFile: boolean): Op[] {
  return paths.map((p, i) =>
    lastIsFile && i === paths.length - 1
      ? op(SYS.mknodat, `create ${p}`, [AT_FDCWD, str(p), S_IFREG | 0o644, 0], IGNORE_ERROR)
      : op(SYS.mkdirat, `mkdir ${p}`, [AT_FDCWD, str(p), 0o755], IGNORE_ERROR)
  );
}

/** The ops of one resolved mount: create, mount, remount for bind flags, propagation. */
export function mountEntryOps(m: ResolvedMount): Op[] {
  const o = m.options;
  const ops = createOps(m.create, m.createFile);
  if (m.cgroupBinds) {
    ops.push(mountOp("tmpfs", m.target, "tmpfs", F.NOSUID | F.NODEV | F.NOEXEC, "mode=755"));
    for (const h of m.cgroupBinds) {
      const at = h.name ? `${m.target}/${h.name}` : m.target;
      if (h.name) {
        ops.push(op(SYS.mkdirat, `mkdir ${at}`, [AT_FDCWD, str(at), 0o755], IGNORE_ERROR));
      }
      ops.push(mountOp(h.source, at, "", F.BIND | F.REC));
      ops.push(
        mountOp(
          h.source,
          at,
          "",
          F.BIND | F.REMOUNT | F.NOSUID | F.NODEV | F.NOEXEC | (o.flags & F.RDONLY),
        ),
      );
    }
    if (o.flags & F.RDONLY) {
      ops.push(
        mountOp(
          "tmpfs",
          m.target,
          "",
          F.REMOUNT | F.RDONLY | F.NOSUID | F.NODEV | F.NOEXEC,
          "mode=755",
        ),
      );
    }
    return ops;
  }
  if (o.bind) {
    ops.push(mountOp(m.source, m.target, "", F.BIND | (o.recursive ? F.REC : 0)));
    if (o.remountFlags) {
      ops.push(mountOp(m.source, m.target, "", F.BIND | F.REMOUNT | o.remountFlags));
    }
  } else {
    const flags = o.flags & ~(F.BIND | F.REC | F.REMOUNT);
    ops.push(mountOp(m.source, m.target, m.fstype, flags, o.data));
  }
  for (const p of o.propagation) ops.push(mountOp("", m.target, "", p));
  return ops;
}

const DEFAULT_NODES: readonly [string, number, number][] = [
  ["null", 1, 3],
  ["zero", 1, 5],
  ["full", 1, 7],
  ["random", 1, 8],
  ["urandom", 1, 9],
  ["tty", 5, 0],
];

function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn);
}

/**
 * /dev as runc leaves it: the default nodes (made with mknod, or bound from the host's in a
 * user namespace, where mknod is refused), the spec's devices, and the standard links.
 */
export function devOps(plan: MountPlan, userns: boolean): Op[] {
  const ops: Op[] = [];
  const dev = plan.freshDev;
  if (dev) {
    for (const [name, major, minor] of DEFAULT_NODES) {
      if (plan.devices.some((d) => d.device.path === `/dev/${name}`)) continue;
      const at = `${dev}/${name}`;
      if (userns) {
        ops.push(
          op(SYS.mknodat, `create ${at}`, [AT_FDCWD, str(at), S_IFREG | 0o666, 0]),
          mountOp(`/dev/${name}`, at, "", F.BIND),
        );
      } else {
        ops.push(
          op(SYS.mknodat, `mknod ${at}`, [
            AT_FDCWD,
            str(at),
            S_IFCHR | 0o666,
            makedev(major, minor),
          ]),
        );
      }
    }
  }
  for (const d of plan.devices) {
    ops.push(...createOps(d.create, false));
    const t = d.device.type;
    const mode = (d.device.fileMode ?? 0o666) & 0o7777;
    if (userns) {
      ops.push(
        op(
          SYS.mknodat,
          `create ${d.target}`,
          [AT_FDCWD, str(d.target), S_IFREG | mode, 0],
          IGNORE_ERROR,
        ),
        mountOp(d.source, d.target, "", F.BIND),
      );
      continue;
    }
    const type = t === "b" ? S_IFBLK : t === "p" ? S_IFIFO : S_IFCHR;
    const rdev = t === "p" ? 0n : makedev(d.device.major ?? 0, d.device.minor ?? 0);
    ops.push(
      op(SYS.mknodat, `mknod ${d.device.path}`, [AT_FDCWD, str(d.target), type | mode, rdev]),
      op(SYS_FCHOWNAT, `chown ${d.device.path}`, [
        AT_FDCWD,
        str(d.target),
        d.device.uid ?? 0,
        d.device.gid ?? 0,
        0x100, // AT_SYMLINK_NOFOLLOW
      ]),
    );
  }
  if (dev) {
    const links: [string, string][] = [
      ["/proc/self/fd", "fd"],
      ["/proc/self/fd/0", "stdin"],
      ["/proc/self/fd/1", "stdout"],
      ["/proc/self/fd/2", "stderr"],
    ];
    if (plan.devpts) links.push(["pts/ptmx", "ptmx"]);
    let kcore = false;
    try {
      kcore = Deno.statSync("/proc/kcore") !== undefined;
    } catch { /* absent on this kernel */ }
    if (kcore) links.push(["/proc/kcore", "core"]);
    for (const [target, name] of links) {
      ops.push(
        op(
          SYS.symlinkat,
          `link ${dev}/${name}`,
          [str(target), AT_FDCWD, str(`${dev}/${name}`)],
          IGNORE_ERROR,
        ),
      );
    }
  }
  return ops;
}

/**
 * The root: `/` gets the mount propagation, recursively (rslave unless the spec says otherwise),
 * the rootfs is bound onto itself (pivot_root needs a mount point), and made read-only last.
 * pivot_root refuses a shared parent: a shared `rootfsPropagation` is applied after it
 * ({@link rootPropagationOps}), `/` is a slave until then.
 */
export function rootBindOps(rootfs: string, propagation: number | undefined): Op[] {
  // Recursive whatever the spec says (crun does the same): a non-recursive `private` would
  // leave the mounts below `/` shared with the host's namespace, and every mount the
  // container makes in its rootfs would appear on the host.
  const before = propagation === undefined || (propagation & F.SHARED) !== 0
    ? F.SLAVE | F.REC
    : propagation | F.REC;
  return [
    mountOp("", "/", "", before),
    mountOp(rootfs, rootfs, "", F.BIND | F.REC),
  ];
}

/** After pivot_root: the new root gets the spec's `rootfsPropagation`, when it gives one. */
export function rootPropagationOps(propagation: number | undefined): Op[] {
  return propagation === undefined ? [] : [mountOp("", "/", "", propagation)];
}

/** pivot_root into the rootfs (or, with --no-pivot, move it over / and chroot). */
export function enterRootOps(rootfs: string, readonly: boolean, noPivot: boolean): Op[] {
  const ops: Op[] = [];
  if (readonly) ops.push(mountOp(rootfs, rootfs, "", F.BIND | F.REMOUNT | F.RDONLY));
  ops.push(op(SYS.chdir, "chdir into the rootfs", [str(rootfs)]));
  if (noPivot) {
    ops.push(
      mountOp(rootfs, "/", "", MS_MOVE),
      op(SYS.chroot, "chroot into the rootfs", [str(".")]),
    );
  } else {
    ops.push(
      op(SYS.pivot_root, "pivot_root", [str("."), str(".")]),
      op(SYS.umount2, "detach the old root", [str("."), 2]),
    );
  }
  ops.push(op(SYS.chdir, "chdir /", [str("/")]));
  return ops;
}
