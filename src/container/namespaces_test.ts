import { assertEquals } from "../../tests/assert.ts";
import { inspectNamespaces, joinedContainers } from "./namespaces.ts";
import type { RunConfig } from "./state.ts";

const withModes = (namespaces: RunConfig["namespaces"]) => ({
  config: { namespaces } as RunConfig,
});

Deno.test("the containers a record joins by --ipc/--pid, for the boot order", () => {
  assertEquals(joinedContainers(withModes(undefined)), []);
  assertEquals(joinedContainers(withModes({ ipc: "shareable", pid: "host" })), []);
  assertEquals(
    joinedContainers(withModes({ ipc: "container:aaa", pid: "container:bbb" })),
    ["aaa", "bbb"],
  );
});

Deno.test("inspect shows docker's defaults and the recorded modes", () => {
  assertEquals(inspectNamespaces(undefined), {
    IpcMode: "shareable",
    PidMode: "",
    UTSMode: "",
    CgroupnsMode: "private",
  });
  assertEquals(
    inspectNamespaces({ ipc: "host", uts: "host", cgroupns: "host" }).CgroupnsMode,
    "host",
  );
});
