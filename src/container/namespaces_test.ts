import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { inspectNamespaces, joinedContainers, namespaceModes } from "./namespaces.ts";
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

Deno.test("modes are checked as docker checks them", () => {
  // Host and private modes never look a container up: no store is needed.
  const store = undefined as unknown as Parameters<typeof namespaceModes>[0];
  assertEquals(namespaceModes(store, {}, false), {});
  assertEquals(
    namespaceModes(store, { ipc: "private", pid: "host", uts: "host", cgroupns: "host" }, false),
    { ipc: "private", pid: "host", uts: "host", cgroupns: "host" },
  );
  assertThrows(() => namespaceModes(store, { ipc: "x" }, false), UsageError, "invalid IPC mode");
  assertThrows(() => namespaceModes(store, { uts: "host" }, true), UsageError, "hostname");
  assertThrows(
    () => namespaceModes(store, { pid: "host" }, false, true),
    UsageError,
    "cannot share the host PID namespace when user namespaces are enabled",
  );
  assertThrows(
    () => namespaceModes(store, { ipc: "host" }, false, true),
    UsageError,
    "cannot share the host IPC namespace",
  );
});
