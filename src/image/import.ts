/**
 * `import`: a filesystem tarball (plain, gzip or zstd; a file or stdin) as a one-layer image,
 * like `docker import`. The tar is the layer as given (its sha256 the diffID, so importing the
 * same tar twice gives the same layer); `-c` instructions make its config and `-m` the comment
 * of its one history entry. Nothing is recorded unless the archive unpacked completely.
 *
 * @module
 */
import { resolve } from "node:path";
import type { ContainerConfig, ImageConfig } from "../../registry/manifest.ts";
import { hostPlatform } from "../../registry/platform.ts";
import { parseReference } from "../../registry/reference.ts";
import { recordImage } from "../builder/builder.ts";
import { publishLayerTar } from "../builder/layer.ts";
import { fromConfig } from "../builder/state.ts";
import { makeBuildDir } from "../builder/sweep.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { removeTree } from "../store/layers.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { applyChanges, parseChanges } from "./changes.ts";
import { decompressor } from "./decompress.ts";
import { imageEvent } from "../events/log.ts";

/** `import`'s options, as docker's flags. */
export interface ImportOptions {
  /** `-c/--change` instructions, in order. */
  readonly changes?: readonly string[];
  /** `-m/--message`: the history comment (docker's `Imported from SOURCE` when absent). */
  readonly message?: string;
  /** `REPOSITORY[:TAG]` to name the image; untagged when absent. */
  readonly reference?: string;
  /** What the archive was read from, for the default comment (`-` for stdin). */
  readonly source: string;
}

/** The archive is not a tar (docker's message). */
export class ImportFormatError extends TsboxError {
  constructor(detail = "archive/tar: invalid tar header") {
    super(detail);
    this.name = "ImportFormatError";
  }
}

const BLOCK = 512;

/**
 * Passes the tar through, failing unless its first block is a tar header (ustar magic, or a
 * valid checksum for an old v7 header): a random file must not become an empty layer.
 */
function tarHeaderCheck(): TransformStream<Uint8Array, Uint8Array> {
  let head = new Uint8Array(0);
  let checked = false;
  const check = () => {
    checked = true;
    if (head.length < BLOCK) throw new ImportFormatError();
    const text = new TextDecoder("latin1").decode(head.subarray(257, 262));
    if (text === "ustar") return;
    const field = new TextDecoder().decode(head.subarray(148, 156)).replace(/[\0 ]/g, "");
    const stored = parseInt(field, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : head[i];
    if (stored !== sum) throw new ImportFormatError();
  };
  return new TransformStream({
    transform(chunk, controller) {
      if (checked) {
        controller.enqueue(chunk);
        return;
      }
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      head = joined;
      if (joined.length < BLOCK) return;
      check();
      controller.enqueue(joined);
    },
    // Ended before a whole header block: not a tar.
    flush() {
      if (!checked) check();
    },
  });
}

/** Compression by magic bytes; xz and bzip2 are refused by name. */
function sniff(head: Uint8Array): "gzip" | "zstd" | "none" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) {
    throw new ImportFormatError("xz-compressed archives are not supported by tsbox's import");
  }
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) {
    throw new ImportFormatError("bzip2-compressed archives are not supported by tsbox's import");
  }
  return "none";
}

/** Imports the tarball `input` as a new image and returns it. */
export async function importImage(
  store: Store,
  input: ReadableStream<Uint8Array>,
  o: ImportOptions,
): Promise<ImageRecord> {
  const changes = parseChanges(o.changes ?? []);
  let tag: string | undefined;
  if (o.reference !== undefined) {
    const ref = parseReference(o.reference);
    if (ref.digest) {
      throw new UsageError(`refusing to create a tag with a digest reference: ${o.reference}`);
    }
    tag = ref.toString();
  }
  const config: ContainerConfig = {};
  applyChanges(config, changes);
  const scratch = await makeBuildDir(resolve(store.root));
  try {
    // Spooled first: the compression is read from the first bytes, and stdin cannot rewind.
    const spool = `${scratch}/import.in`;
    await input.pipeTo((await Deno.create(spool)).writable);
    const head = new Uint8Array(4);
    const f = await Deno.open(spool);
    try {
      await f.read(head);
    } finally {
      f.close();
    }
    const tar = (await Deno.open(spool)).readable
      .pipeThrough(decompressor(sniff(head)))
      .pipeThrough(tarHeaderCheck());
    const layer = await publishLayerTar(store, tar, scratch);
    const created = new Date().toISOString();
    const platform = hostPlatform();
    const image: ImageConfig = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created,
      config,
      rootfs: { type: "layers", diff_ids: [layer.diffId] },
      history: [{ created, comment: o.message || `Imported from ${o.source}` }],
    };
    const record = await recordImage(store, fromConfig(image, [layer]), tag ? [tag] : []);
    imageEvent(store.root, "import", record.id);
    return record;
  } finally {
    await removeTree(scratch);
  }
}
