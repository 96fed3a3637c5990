/**
 * Where the resident memory of a set of processes goes: the sum of `Pss` of every mapping in
 * /proc/PID/smaps, by kind of mapping, per process.
 *
 * @module
 */

/** PSS in bytes per process, in all and by kind of mapping. */
export interface PssBreakdown {
  readonly perProcess: number;
  readonly kinds: [kind: string, perProcess: number][];
}

/**
 * The kind of a mapping: V8 heap pages (anonymous 256 KiB), the C heap (`[heap]`), other
 * anonymous memory (thread stacks, malloc arenas of threads, V8's code space), the deno
 * binary's text, read-only data and relocated data, and other files.
 */
function kindOf(start: number, end: number, perms: string, name: string): string {
  if (name === "") return end - start === 256 * 1024 ? "V8 heap pages" : "other anonymous";
  if (name === "[heap]") return "C heap";
  if (name.startsWith("[")) return name;
  if (/\/deno$/.test(name)) {
    return perms.includes("x")
      ? "deno binary: text"
      : perms.includes("w")
      ? "deno binary: data"
      : "deno binary: rodata";
  }
  if (/\/lib[^/]*\.so/.test(name)) return "shared libraries";
  return "other files";
}

/** The PSS of `pids` by kind of mapping, averaged per process. */
export function pssBreakdown(pids: readonly number[]): PssBreakdown {
  const kinds = new Map<string, number>();
  let total = 0;
  for (const pid of pids) {
    let kind = "";
    for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m) {
        kind = kindOf(parseInt(m[1], 16), parseInt(m[2], 16), m[3], m[4]);
        continue;
      }
      const p = /^Pss:\s+(\d+) kB/.exec(line);
      if (p) {
        const bytes = Number(p[1]) * 1024;
        kinds.set(kind, (kinds.get(kind) ?? 0) + bytes);
        total += bytes;
      }
    }
  }
  const n = Math.max(pids.length, 1);
  return {
    perProcess: total / n,
    kinds: [...kinds].map(([k, v]): [string, number] => [k, v / n]).sort((a, b) => b[1] - a[1]),
  };
}

/** `b` as lines of "  N.NN MiB  kind". */
export function formatBreakdown(b: PssBreakdown): string {
  return b.kinds.filter(([, v]) => v >= 10 * 1024)
    .map(([k, v]) => `  ${(v / 1024 / 1024).toFixed(2).padStart(6)} MiB  ${k}`).join("\n");
}
