/**
 * Where a build's result goes (`build -o/--output`, as buildx takes it): an image in the store
 * (the default), the final stage's filesystem as a directory (`type=local,dest=DIR`, or `-o
 * DIR`) or as a tar (`type=tar,dest=FILE`, `-` for stdout), or the image as a docker or OCI
 * archive (`type=docker|oci,dest=FILE`). The filesystem outputs make no image, as BuildKit's.
 *
 * The tar is the merged filesystem as a layer tar would carry it (hard links, fifos, devices,
 * xattrs kept); the directory is that tar unpacked with the checks a pulled layer gets, so a
 * hostile image's symlinks never lead a write outside `dest`.
 *
 * @module
 */
import { resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { diffEntries } from "../image/dir_tar.ts";
import { tarStream } from "../image/tar_writer.ts";

/** One `--output`. */
export type OutputSpec =
  | { readonly type: "image" }
  | { readonly type: "local"; readonly dest: string }
  | { readonly type: "tar"; readonly dest: string }
  | { readonly type: "docker" | "oci"; readonly dest: string };

/**
 * Parses an `--output` value: `type=T[,dest=D]` (with buildx's `type=registry` refused, push
 * being its own command), a bare path (`-o DIR`), or `-` (a tar on stdout).
 */
export function parseOutputFlag(value: string): OutputSpec {
  if (value === "-") return { type: "tar", dest: "-" };
  if (!value.includes("=")) {
    if (value === "") throw new UsageError("invalid --output: empty");
    return { type: "local", dest: value };
  }
  const fields = new Map<string, string>();
  for (const part of value.split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --output ${value}: "${part}" is not KEY=VALUE`);
    fields.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1));
  }
  const type = fields.get("type") ?? "local";
  const dest = fields.get("dest");
  if (!["image", "local", "tar", "docker", "oci"].includes(type)) {
    throw new UsageError(
      `invalid --output ${value}: type ${type} is not supported (image, local, tar, docker, oci)`,
    );
  }
  for (const k of fields.keys()) {
    // name= is accepted for type=image (the tags -t gives), as buildx.
    if (!["type", "dest", "name"].includes(k)) {
      throw new UsageError(`invalid --output ${value}: unknown key "${k}"`);
    }
  }
  switch (type) {
    case "image":
      return { type: "image" };
    case "local":
    case "tar":
    case "docker":
    case "oci":
      if (!dest) throw new UsageError(`invalid --output ${value}: type=${type} needs dest=`);
      if (type === "local" && dest === "-") {
        throw new UsageError(`invalid --output ${value}: type=local cannot write to stdout`);
      }
      return { type, dest };
    default:
      throw new UsageError(
        `invalid --output ${value}: type ${type} is not supported (image, local, tar, docker, oci)`,
      );
  }
}

/** The merged filesystem at `rootfs` as a tar stream (entries sorted, as a layer's). */
export function filesystemTar(rootfs: string): ReadableStream<Uint8Array> {
  return tarStream(diffEntries(rootfs));
}

/** Writes the filesystem at `rootfs` to a `local` or `tar` output. */
export async function exportFilesystem(
  rootfs: string,
  spec: { readonly type: "local" | "tar"; readonly dest: string },
): Promise<void> {
  if (spec.type === "tar") {
    if (spec.dest === "-") {
      await filesystemTar(rootfs).pipeTo(Deno.stdout.writable, { preventClose: true });
      return;
    }
    const temp = `${resolve(spec.dest)}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
      await filesystemTar(rootfs).pipeTo(file.writable);
      await Deno.rename(temp, spec.dest);
    } catch (err) {
      await Deno.remove(temp).catch(() => {});
      throw err;
    }
    return;
  }
  await Deno.mkdir(spec.dest, { recursive: true, mode: 0o755 });
  // Loaded only here: the unpacker's FFI symbols are not needed by image builds.
  const { unpackLayer } = await import("../image/unpack.ts");
  await unpackLayer(filesystemTar(rootfs), resolve(spec.dest), { rootless: Deno.uid() !== 0 });
}
