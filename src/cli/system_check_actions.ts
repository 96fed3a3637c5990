/**
 * What `system check` does (see system_check_command.ts): opens the store (which removes
 * whatever killed tsbox processes left, as every command does), compares the rest with the
 * database, prints one line per finding and, with `--repair`, removes the leftovers.
 *
 * @module
 */
import type { GlobalOptions } from "./globals.ts";

/** Runs the check; returns the exit code: 0 when the store is consistent, 1 otherwise. */
export async function systemCheck(g: GlobalOptions, repair: boolean): Promise<number> {
  const { Store } = await import("../store/mod.ts");
  const { checkStore } = await import("../store/check.ts");
  const store = await Store.open(g.root);
  try {
    const report = await checkStore(store.root, store.db, {
      repair,
      removeContainerDir: async (id, dir) => {
        const { releaseRuntime } = await import("../container/cleanup.ts");
        const { removeTree } = await import("../container/rmtree.ts");
        await releaseRuntime(id, store.root);
        await removeTree(dir);
      },
    });
    for (const f of report.findings) {
      const outcome = f.repaired ? " [removed]" : f.error ? ` [not removed: ${f.error}]` : "";
      console.log(`${f.kind}: ${f.path}: ${f.detail}${outcome}`);
    }
    if (report.busy) {
      console.log(
        "layers, links and blobs not checked: another tsbox process is pulling, loading or " +
          "building into this store; run the check again when it is done",
      );
    }
    const problems = report.findings.length;
    if (problems === 0 && !report.busy) {
      console.log(`${store.root}: consistent`);
      return 0;
    }
    const left = report.findings.filter((f) => !f.repaired).length;
    console.error(
      `${store.root}: ${problems} problem${problems === 1 ? "" : "s"} found` +
        (repair ? `, ${problems - left} repaired` : "") +
        (!repair && report.findings.some((f) => f.removable)
          ? " (--repair removes leftovers)"
          : ""),
    );
    return 1;
  } finally {
    store.close();
  }
}
