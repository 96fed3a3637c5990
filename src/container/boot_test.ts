import { Store } from "../store/mod.ts";
import { assertEquals, assertMatch } from "../../tests/assert.ts";
import { ensureThisBoot, EXIT_AT_REBOOT, RESET_LOG, runrootOf } from "./boot.ts";
import { startsAtBoot } from "./boot_start.ts";
import {
  type ContainerRecord,
  createContainer,
  getContainer,
  type RunConfig,
  updateContainer,
} from "./state.ts";
import { CONFIG } from "./run_config_fixture.ts";

/** A store and a runroot of the test's own (TSBOX_RUNROOT), both removed afterwards. */
async function withStore(fn: (store: Store, runroot: string) => void | Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "tsbox-boot-" });
  const runroot = await Deno.makeTempDir({ prefix: "tsbox-run-" });
  Deno.env.set("TSBOX_RUNROOT", runroot);
  const store = await Store.open(root);
  try {
    await fn(store, runroot);
  } finally {
    store.close();
    Deno.env.delete("TSBOX_RUNROOT");
    await Deno.remove(root, { recursive: true });
    await Deno.remove(runroot, { recursive: true }).catch(() => {});
  }
}

/** A row as a supervisor of the last boot left it: running, with pids that mean nothing now. */
function runningRow(store: Store, name: string): string {
  const id = name.padEnd(64, "0").replace(/[^0-9a-f]/g, "e");
  createContainer(store, { id, name, imageId: "sha256:1", imageName: "x", config: CONFIG });
  updateContainer(store, id, {
    state: "running",
    pid: 1,
    pidStart: 1,
    supervisorPid: 1,
    supervisorStart: 1,
    startedAt: Date.now(),
  });
  return id;
}

Deno.test("a new boot resets running rows once (255, no pids); a first-seen store is adopted", () =>
  withStore(async (store, runroot) => {
    assertEquals(runrootOf(store.root), runroot);
    // No reset log yet: a store an older tsbox used in this very boot is adopted, not reset
    // (here by the first command that creates a container).
    const first = runningRow(store, "t-first");
    assertEquals(getContainer(store, first)!.state, "running");
    assertMatch(await Deno.readTextFile(`${store.root}/${RESET_LOG}`), / adopted /);
    assertEquals(ensureThisBoot(store), false, "checked once per store and process");

    const second = runningRow(store, "t-second");
    // The runroot goes (a reboot): the next process resets.
    await Deno.remove(runroot, { recursive: true });
    const other = await Store.open(store.root);
    try {
      assertEquals(ensureThisBoot(other), true);
      for (const id of [first, second]) {
        const c = getContainer(other, id)!;
        assertEquals(
          [c.state, c.exitCode, c.pid, c.supervisorPid],
          ["exited", EXIT_AT_REBOOT, undefined, undefined],
        );
      }
      const log = await Deno.readTextFile(`${store.root}/${RESET_LOG}`);
      assertEquals(log.split("\n").filter((l) => l.includes(" reset 2 of 2 ")).length, 1, log);
    } finally {
      other.close();
    }
  }));

function record(over: Partial<ContainerRecord> & { policy: string; max?: number }) {
  const { policy, max, ...rest } = over;
  return {
    id: "a".repeat(64),
    name: "x",
    imageId: "sha256:1",
    imageName: "x",
    config: {
      ...CONFIG,
      restart: { name: policy as RunConfig["restart"]["name"], maxRetries: max ?? 0 },
    },
    state: "exited",
    oomKilled: false,
    createdAt: 0,
    startedAt: 1,
    restartCount: 0,
    stopRequested: false,
    exitCode: EXIT_AT_REBOOT,
    ...rest,
  } as ContainerRecord;
}

Deno.test("what system boot starts: docker's daemon's table", () => {
  assertEquals(startsAtBoot(record({ policy: "always" })), true);
  assertEquals(startsAtBoot(record({ policy: "always", stopRequested: true })), true);
  assertEquals(startsAtBoot(record({ policy: "unless-stopped" })), true);
  assertEquals(startsAtBoot(record({ policy: "unless-stopped", stopRequested: true })), false);
  assertEquals(startsAtBoot(record({ policy: "on-failure" })), true);
  assertEquals(startsAtBoot(record({ policy: "on-failure", exitCode: 0 })), false);
  assertEquals(startsAtBoot(record({ policy: "on-failure", stopRequested: true })), false);
  assertEquals(startsAtBoot(record({ policy: "on-failure", max: 3, restartCount: 3 })), false);
  assertEquals(startsAtBoot(record({ policy: "on-failure", max: 3, restartCount: 2 })), true);
  assertEquals(startsAtBoot(record({ policy: "no" })), false);
  assertEquals(startsAtBoot(record({ policy: "always", startedAt: undefined })), false);
});
