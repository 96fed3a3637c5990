import { Store } from "../store/mod.ts";
import { assertEquals, assertMatch, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  containerUsingImage,
  createContainer,
  findContainer,
  getContainer,
  listContainers,
  NameConflictError,
  reconcile,
  requireContainer,
  updateContainer,
} from "./state.ts";
import { startTime } from "./proc.ts";
import { readContainer, readContainers } from "./state_read.ts";
import { NotFoundError } from "../errors.ts";
import { CONFIG } from "./run_config_fixture.ts";

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

/** A pid and start time of a process that has ended. */
async function deadProcess(): Promise<{ pid: number; start: number }> {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const start = startTime(child.pid)!;
  child.kill("SIGKILL");
  await child.status;
  return { pid: child.pid, start };
}

Deno.test("a --rm container whose runner died is removed by the next reader", () =>
  withStore(async (store) => {
    const c = createContainer(store, {
      id: id("e"),
      name: "t-reap-rm",
      imageId: "sha256:1",
      imageName: "x",
      config: { ...CONFIG, autoRemove: true },
    });
    const dir = `${store.root}/containers/${c.id}`;
    await Deno.mkdir(`${dir}/upper/etc`, { recursive: true });
    const dead = await deadProcess();
    const running = updateContainer(store, c.id, {
      state: "running",
      pid: dead.pid,
      pidStart: dead.start,
      supervisorPid: dead.pid,
      supervisorStart: dead.start,
    })!;
    assertEquals(reconcile(store, running).state, "exited", "its last state, 137");
    assertEquals(reconcile(store, running).exitCode, 137);
    assertEquals(getContainer(store, c.id), undefined);
    assertEquals(findContainer(store, "t-reap-rm"), undefined);
    assertEquals(listContainers(store), []);
    let gone = false;
    try {
      await Deno.stat(dir);
    } catch (err) {
      gone = err instanceof Deno.errors.NotFound;
    }
    assertOk(gone, "the container's directory is removed");
  }));

Deno.test("an exited row still claimed by a dead supervisor can be started again", () =>
  withStore(async (store) => {
    const c = createContainer(store, {
      id: id("f"),
      imageId: "sha256:1",
      imageName: "x",
      config: CONFIG,
    });
    const dead = await deadProcess();
    updateContainer(store, c.id, {
      state: "exited",
      exitCode: 0,
      supervisorPid: dead.pid,
      supervisorStart: dead.start,
    });
    const after = findContainer(store, c.id)!;
    assertEquals(after.state, "exited");
    assertEquals(after.exitCode, 0);
    assertEquals(after.supervisorPid, undefined);
    assertEquals(getContainer(store, c.id)?.supervisorPid, undefined, "recorded, not only shown");
  }));

Deno.test("reading a dead runner's row works when the database refuses writes", () =>
  withStore(async (store) => {
    const c = createContainer(store, {
      id: id("9"),
      name: "t-reap-ro",
      imageId: "sha256:1",
      imageName: "x",
      config: CONFIG,
    });
    const dead = await deadProcess();
    updateContainer(store, c.id, {
      state: "running",
      pid: dead.pid,
      pidStart: dead.start,
      supervisorPid: dead.pid,
      supervisorStart: dead.start,
    });
    // As a full disk would: every write to the containers table fails.
    store.db.run(`CREATE TRIGGER no_writes BEFORE UPDATE ON containers
                  BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    const seen = findContainer(store, "t-reap-ro")!;
    assertEquals(seen.state, "exited");
    assertEquals(seen.exitCode, 137);
    assertEquals(listContainers(store).map((x) => x.state), ["exited"]);
    assertEquals(getContainer(store, c.id)?.state, "running", "nothing could be recorded");
    store.db.run("DROP TRIGGER no_writes");
    assertEquals(findContainer(store, "t-reap-ro")?.state, "exited");
    assertEquals(getContainer(store, c.id)?.state, "exited", "recorded once writes work");
  }));

Deno.test("state_read answers as state.ts: settled rows as read, a dead runner's reconciled", () =>
  withStore(async (store) => {
    const make = (c: string, name: string, autoRemove = false) =>
      createContainer(store, {
        id: id(c),
        name,
        imageId: "sha256:1",
        imageName: "x",
        config: { ...CONFIG, autoRemove },
      });
    make("a", "t-created");
    const live = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const start = startTime(live.pid)!;
      updateContainer(store, make("b", "t-live").id, {
        state: "running",
        pid: live.pid,
        pidStart: start,
        supervisorPid: live.pid,
        supervisorStart: start,
      });
      // Settled rows: the same answer as state.ts, no reconciling needed.
      assertEquals(await readContainers(store), listContainers(store));
      assertEquals(await readContainer(store, "t-live"), findContainer(store, "t-live"));
      assertEquals((await readContainer(store, id("b").slice(0, 5)))?.state, "running");
      assertEquals(await readContainer(store, "t-none"), undefined);
      make("c", "t-c2");
      assertEquals(await readContainer(store, "c"), findContainer(store, "c"), "one c prefix");
      // A dead runner: the read reconciles it, as listContainers would have.
      const dead = await deadProcess();
      for (const [c, name, rm] of [["e", "t-dead", false], ["f", "t-dead-rm", true]] as const) {
        updateContainer(store, make(c, name, rm).id, {
          state: "running",
          pid: dead.pid,
          pidStart: dead.start,
          supervisorPid: dead.pid,
          supervisorStart: dead.start,
        });
      }
      const read = await readContainers(store);
      assertEquals(read.find((c) => c.name === "t-dead")?.state, "exited");
      assertEquals(read.find((c) => c.name === "t-dead")?.exitCode, 137);
      assertEquals(read.find((c) => c.name === "t-dead-rm"), undefined, "--rm: removed");
      assertEquals(getContainer(store, id("e"))?.state, "exited", "recorded, not only shown");
      assertEquals(read, listContainers(store));
    } finally {
      live.kill("SIGKILL");
      await live.status;
    }
  }));
