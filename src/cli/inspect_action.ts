/**
 * `inspect` (and `image inspect`, `container inspect`): reads a container or an image and
 * prints docker's inspect object. Loads only the store and the rows; the code that builds a
 * container's object (container/inspect.ts) is loaded when a container matched, and rows are
 * reconciled (state.ts) only when one needs it (state_read.ts).
 *
 * @module
 */
import { readContainer } from "../container/state_read.ts";
import { inspectImage } from "../image/image_inspect.ts";
import { lazyImport } from "../lazy.ts";
import { printInspect } from "./formats.ts";
import type { GlobalOptions } from "./globals.ts";
import { withStore } from "./with_store.ts";

const containerInspect = () =>
  lazyImport<typeof import("../container/inspect.ts")>(
    new URL("../container/inspect.ts", import.meta.url),
  );

/**
 * Prints the inspect objects of `names` (containers first, then images, unless `only` is
 * `image`), as `format` says; returns 1 when one was not found (docker's "No such object").
 */
export async function inspectCommand(
  g: GlobalOptions,
  names: string[],
  only?: "image",
  format?: string,
): Promise<number> {
  return await withStore(g, async (store) => {
    const found = [];
    let code = 0;
    for (const name of names) {
      const container = only === "image" ? undefined : await readContainer(store, name);
      const image = container ? undefined : store.findImage(name);
      if (container) found.push((await containerInspect()).inspectContainer(store, container));
      else if (image) found.push(inspectImage(image));
      else {
        console.error(`Error: No such object: ${name}`);
        code = 1;
      }
    }
    return Math.max(code, await printInspect(format, found));
  });
}
