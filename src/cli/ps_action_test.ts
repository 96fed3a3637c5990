import { assertEquals } from "../../tests/assert.ts";
import type { ContainerRecord, ContainerState } from "../container/state.ts";
import type { Store } from "../store/mod.ts";
import { containerFilter } from "./container_filters.ts";
import { unfiltered } from "./ps_action.ts";

function record(id: string, state: ContainerState): ContainerRecord {
  return {
    id,
    name: `c${id}`,
    imageId: "sha256:0",
    imageName: "busybox",
    config: { argv: ["true"], network: "none", mounts: [] } as unknown as ContainerRecord["config"],
    state,
    oomKilled: false,
    createdAt: 0,
    restartCount: 0,
    stopRequested: false,
  };
}

Deno.test("ps without --filter keeps what containerFilter keeps for no filter", () => {
  const states: ContainerState[] = ["running", "exited", "created", "paused", "restarting"];
  const list = Array.from({ length: 12 }, (_, i) => record(String(i), states[i % states.length]));
  // No filter value means containerFilter never reads the store.
  const store = undefined as unknown as Store;
  for (const all of [undefined, false, true]) {
    for (const limit of [undefined, -1, 0, 1, 3, 20]) {
      const options = { all, limit };
      for (const rows of [list, list.slice(0, 1), []]) {
        assertEquals(
          unfiltered(options).apply(rows).map((c) => c.id),
          containerFilter(store, [], options).apply(rows).map((c) => c.id),
          JSON.stringify(options),
        );
      }
    }
  }
});
