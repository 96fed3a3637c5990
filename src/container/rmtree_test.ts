import { join } from "node:path";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { removeTree, RemoveTreeError, removeTreeInUserns, rmtreeArgv } from "./rmtree.ts";
import { rmtreeMain } from "./rmtree_main.ts";
import type { RootlessMapping } from "../runtime/rootless.ts";

const isRoot = Deno.uid() === 0;

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** A tree with a nested directory, a file and a symlink pointing out of it. */
async function tree(base: string): Promise<string> {
  const top = join(base, "tree");
  await Deno.mkdir(join(top, "a", "b"), { recursive: true });
  await Deno.writeTextFile(join(top, "a", "b", "f"), "x");
  await Deno.symlink(base, join(top, "out"));
  return top;
}

Deno.test("rmtreeMain refuses anything but one absolute path other than /", async () => {
  const base = await Deno.makeTempDir();
  try {
    const top = await tree(base);
    const quiet = console.error;
    console.error = () => {};
    try {
      for (const args of [[], ["tree"], ["/"], ["//"], [top, top]]) {
        assertEquals(await rmtreeMain(args), 2, JSON.stringify(args));
      }
    } finally {
      console.error = quiet;
    }
    assertOk(await exists(join(top, "a", "b", "f")), "nothing was removed");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("rmtreeMain removes a tree without following links; a missing one is fine", async () => {
  const base = await Deno.makeTempDir();
  try {
    const top = await tree(base);
    assertEquals(await rmtreeMain([top]), 0);
    assertOk(!(await exists(top)), "the tree is gone");
    assertOk(await exists(base), "the link's target stays");
    assertEquals(await rmtreeMain([top]), 0);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("rmtreeArgv runs the import-free entry with the path last", () => {
  const argv = rmtreeArgv("/x/y");
  assertEquals(argv[0], Deno.execPath());
  assertEquals(argv.at(-1), "/x/y");
  assertOk(argv.at(-2)!.endsWith("/rmtree_main.ts"), argv.join(" "));
  assertOk(argv.includes("--no-config"), argv.join(" "));
});

Deno.test("removeTree removes a tree and tolerates a missing one", async () => {
  const base = await Deno.makeTempDir();
  try {
    const top = await tree(base);
    await removeTree(top);
    assertOk(!(await exists(top)), "the tree is gone");
    await removeTree(top);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

// The namespace as a rootless user's: 0 inside is this process's own id (so it is root there
// after execve), 1.. inside are OUTSIDE.. on the host, as a subordinate range.
const OUTSIDE = 3_100_000;
const COUNT = 1000;
const self = (id: number | null) => [
  { inside: 0, outside: id ?? 0, count: 1 },
  { inside: 1, outside: OUTSIDE, count: COUNT },
];
const maps: RootlessMapping = {
  mapping: { uid: self(Deno.uid()), gid: self(Deno.gid()) },
  subUids: false,
  subGids: false,
};

/**
 * A tree as a rootless container leaves it: the top is the user's, below it a 0700 directory
 * of a subordinate id (or `stranger`) with a file in it.
 */
async function mappedTree(base: string, stranger?: number): Promise<string> {
  const top = join(base, "ctr");
  await Deno.mkdir(join(top, "priv"), { recursive: true });
  await Deno.writeTextFile(join(top, "priv", "f"), "x");
  await Deno.chmod(join(top, "priv"), 0o700);
  const owner = stranger ?? OUTSIDE + 1;
  await Deno.chown(join(top, "priv"), owner, owner);
  await Deno.chown(join(top, "priv", "f"), owner, owner);
  return top;
}

Deno.test({
  name: "removeTreeInUserns removes files of mapped ids as root of the namespace",
  ignore: !isRoot,
  fn: async () => {
    const base = await Deno.makeTempDir();
    try {
      const top = await mappedTree(base);
      await removeTreeInUserns(top, maps);
      assertOk(!(await exists(top)), "the tree is gone");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name: "removeTreeInUserns cannot reach ids outside the mapping, and says so",
  ignore: !isRoot,
  fn: async () => {
    const base = await Deno.makeTempDir();
    try {
      // Host root could remove it; root of the namespace has no power over an unmapped owner.
      const top = await mappedTree(base, OUTSIDE + COUNT + 5);
      const err = await assertRejects(() => removeTreeInUserns(top, maps), RemoveTreeError);
      assertOk(err.message.includes(top), err.message);
      assertOk(await exists(join(top, "priv", "f")), "the unmapped id's file stays");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
