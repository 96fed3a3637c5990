import { Store } from "../store/mod.ts";
import { assertEquals, assertMatch, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  containerUsingImage,
  createContainer,
  findContainer,
  listContainers,
  NameConflictError,
  requireContainer,
  type RunConfig,
  updateContainer,
} from "./state.ts";
import { startTime } from "./proc.ts";
import { NotFoundError } from "../errors.ts";

const CONFIG: RunConfig = {
  argv: ["sh"],
  env: [],
  cwd: "/",
  user: "",
  hostname: "h",
  network: "private",
  resources: {},
  mounts: [],
  readOnly: false,
  tty: false,
  interactive: false,
  layers: [],
  restart: { name: "no", maxRetries: 0 },
  autoRemove: false,
  stopSignal: 15,
  stopTimeout: 10,
};

async function withStore(fn: (store: Store) => void | Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "tsbox-state-" });
  const store = await Store.open(root);
  try {
    await fn(store);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
}

const id = (c: string) => c.repeat(64);

Deno.test("names are unique; a clash names the holder; lookup by name, id and prefix", () =>
  withStore((store) => {
    const a = createContainer(store, {
      id: id("a"),
      name: "web",
      imageId: "sha256:1",
      imageName: "x",
      config: CONFIG,
    });
    assertEquals(a.state, "created");
    const err = assertThrows(
      () =>
        createContainer(store, {
          id: id("b"),
          name: "web",
          imageId: "sha256:1",
          imageName: "x",
          config: CONFIG,
        }),
      NameConflictError,
    );
    assertMatch(err.message, new RegExp(id("a")));
    const b = createContainer(store, {
      id: "ab" + id("c").slice(2),
      imageId: "sha256:2",
      imageName: "y",
      config: CONFIG,
    });
    assertMatch(b.name, /^[a-z]+_[a-z]+\d?$/);
    assertEquals(findContainer(store, "web")?.id, a.id);
    assertEquals(findContainer(store, "/web")?.id, a.id);
    assertEquals(findContainer(store, b.name)?.id, b.id);
    assertEquals(findContainer(store, "aaa")?.id, a.id);
    assertEquals(findContainer(store, "a"), undefined, "ambiguous prefix");
    assertThrows(() => requireContainer(store, "a"), Error, "multiple containers");
    assertThrows(() => requireContainer(store, "nope"), NotFoundError);
    assertEquals(findContainer(store, "abc")?.id, b.id);
    assertEquals(containerUsingImage(store, "sha256:2"), b.id.slice(0, 12));
    assertEquals(containerUsingImage(store, "sha256:3"), undefined);
    assertEquals(listContainers(store).length, 2);
  }));

Deno.test("a running row whose supervisor and pid are gone reads as exited", () =>
  withStore(async (store) => {
    const c = createContainer(store, {
      id: id("d"),
      imageId: "sha256:1",
      imageName: "x",
      config: CONFIG,
    });
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const start = startTime(child.pid);
    assertOk(start !== undefined);
    updateContainer(store, c.id, {
      state: "running",
      pid: child.pid,
      pidStart: start,
      supervisorPid: child.pid,
      supervisorStart: start,
    });
    assertEquals(findContainer(store, c.id)?.state, "running");
    // Same pid, other start time: a reused pid is not the supervisor.
    updateContainer(store, c.id, { supervisorStart: start! + 1, pidStart: start! + 1 });
    assertEquals(findContainer(store, c.id)?.state, "exited");
    updateContainer(store, c.id, {
      state: "running",
      supervisorPid: child.pid,
      supervisorStart: start,
      pid: child.pid,
      pidStart: start,
    });
    child.kill("SIGKILL");
    await child.status;
    const after = findContainer(store, c.id)!;
    assertEquals(after.state, "exited");
    assertEquals(after.exitCode, 137);
    assertEquals(after.pid, undefined);
  }));
