/**
 * nftables through libnftables (Debian's libnftables1): the same command language as the `nft`
 * program, run in-process, with output and errors captured in buffers. No `nft` program is run.
 *
 * A command buffer is one transaction: either every command in it applies or none does.
 *
 * @module
 */
const LIBRARY = "libnftables.so.1";

const SYMBOLS = {
  nft_ctx_new: { parameters: ["u32"], result: "pointer" },
  nft_ctx_free: { parameters: ["pointer"], result: "void" },
  nft_ctx_buffer_output: { parameters: ["pointer"], result: "i32" },
  nft_ctx_buffer_error: { parameters: ["pointer"], result: "i32" },
  nft_ctx_get_output_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_ctx_get_error_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_ctx_output_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  nft_run_cmd_from_buffer: { parameters: ["pointer", "buffer"], result: "i32" },
} as const;

/** nft_ctx_output flags. */
export const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
/** Output as JSON (`nft -j`). */
export const NFT_CTX_OUTPUT_JSON = 1 << 4;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function nft(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  if (lib) return lib;
  try {
    lib = Deno.dlopen(LIBRARY, SYMBOLS).symbols;
  } catch (err) {
    throw new NftablesError(
      "",
      `${LIBRARY} cannot be loaded (${(err as Error).message}): bridge networks need ` +
        `nftables' library (Debian: apt-get install libnftables1)`,
      { cause: err },
    );
  }
  return lib;
}

/** Whether libnftables can be loaded here (it is loaded then, as every later call needs it). */
export function nftablesAvailable(): boolean {
  try {
    nft();
    return true;
  } catch {
    return false;
  }
}

/**
 * nftables refused a command buffer (or libnftables is missing): `commands` is what was sent,
 * `detail` nft's message.
 */
export class NftablesError extends Error {
  constructor(readonly commands: string, readonly detail: string, options?: ErrorOptions) {
    super(
      `nftables: ${detail.trim() || "command failed"}` +
        (commands ? ` (in: ${firstLines(commands)})` : ""),
      options,
    );
    this.name = "NftablesError";
  }
}

function firstLines(text: string): string {
  const lines = text.trim().split("\n");
  return lines.slice(0, 3).join("; ") + (lines.length > 3 ? "; ..." : "");
}

/** Options of {@link runNft}. */
export interface RunOptions {
  /** Ask for JSON output (`nft -j`). */
  readonly json?: boolean;
  /** Show rule handles. */
  readonly handles?: boolean;
}

/**
 * Runs `commands` (nft's language, one transaction) in the calling thread's network namespace
 * and returns what nft printed. Throws {@link NftablesError} with nft's error text.
 */
export function runNft(commands: string, options: RunOptions = {}): string {
  const n = nft();
  const ctx = n.nft_ctx_new(0);
  if (ctx === null) throw new NftablesError("", "nft_ctx_new failed");
  try {
    n.nft_ctx_buffer_output(ctx);
    n.nft_ctx_buffer_error(ctx);
    let flags = 0;
    if (options.json) flags |= NFT_CTX_OUTPUT_JSON;
    if (options.handles) flags |= NFT_CTX_OUTPUT_HANDLE;
    if (flags) n.nft_ctx_output_set_flags(ctx, flags);
    const text = new TextEncoder().encode(commands);
    const buf = new Uint8Array(text.length + 1);
    buf.set(text);
    const rc = n.nft_run_cmd_from_buffer(ctx, buf);
    const out = n.nft_ctx_get_output_buffer(ctx);
    const output = out === null ? "" : Deno.UnsafePointerView.getCString(out);
    if (rc !== 0) {
      const err = n.nft_ctx_get_error_buffer(ctx);
      throw new NftablesError(commands, err === null ? "" : Deno.UnsafePointerView.getCString(err));
    }
    return output;
  } finally {
    n.nft_ctx_free(ctx);
  }
}

/** One object of `nft -j list ...` output: `{ "table": {...} }`, `{ "chain": {...} }`, ... */
export type NftObject = Record<string, Record<string, unknown>>;

/** Runs a `list` command with JSON output and returns its objects (metainfo left out). */
export function listNft(command: string, options: RunOptions = {}): NftObject[] {
  const text = runNft(command, { ...options, json: true });
  if (!text.trim()) return [];
  const parsed = JSON.parse(text) as { nftables?: NftObject[] };
  return (parsed.nftables ?? []).filter((o) => !("metainfo" in o));
}
