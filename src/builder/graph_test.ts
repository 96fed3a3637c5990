import { assertEquals } from "../../tests/assert.ts";
import { parseDockerfile } from "./dockerfile.ts";
import { JobSlots, neededStages } from "./graph.ts";

Deno.test("graph: the target's stages through FROM, COPY --from and RUN --mount from=", () => {
  const df = parseDockerfile([
    "ARG SRC=gen",
    "FROM busybox AS base",
    "FROM busybox AS unused",
    "RUN exit 1",
    "FROM base AS gen",
    "FROM busybox AS tools",
    "FROM busybox AS cachefill",
    "FROM busybox",
    "COPY --from=${SRC} /a /a",
    "RUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c,from=cachefill ls",
    "COPY --from=busybox:latest /bin/sh /sh",
    "",
  ].join("\n"));
  const lookup = (n: string) => (n === "SRC" ? "gen" : undefined);
  const plan = neededStages(df, 5, lookup);
  assertEquals(plan.map((p) => [p.stage.index, p.deps]), [
    [0, []],
    [2, [0]],
    [3, []],
    [4, []],
    [5, [2, 3, 4]],
  ]);
  assertEquals(neededStages(df, 1, lookup).map((p) => p.stage.index), [1]);
});

Deno.test("graph: job slots hold at most n, and a waiter gives its slot back", async () => {
  const slots = new JobSlots(2);
  let running = 0;
  let most = 0;
  const work = () =>
    slots.run(async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    });
  await Promise.all([work(), work(), work(), work(), work()]);
  assertEquals(most, 2);

  // One slot: a holder waiting for work that needs a slot does not deadlock.
  const one = new JobSlots(1);
  const inner = () => one.run(() => Promise.resolve("inner"));
  assertEquals(await one.run(() => one.suspend(inner())), "inner");
});
