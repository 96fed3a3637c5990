import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { applyChanges } from "./changes.ts";

Deno.test("applyChanges: docker's -c instructions on a config, variables from its Env", () => {
  const base = { Env: ["PATH=/bin", "HOME=/root"], WorkingDir: "/srv" };
  const c = applyChanges(base, [
    "ENV APP=/opt/app MODE=prod",
    "WORKDIR $APP/run",
    "CMD run --fast",
    'ENTRYPOINT ["/init"]',
    "EXPOSE 80 53/udp",
    'LABEL a=1 "b c"=2',
    "USER app:app",
    "VOLUME /data",
    "STOPSIGNAL SIGINT",
    "onbuild RUN true",
  ]);
  assertEquals(c.Env, ["PATH=/bin", "HOME=/root", "APP=/opt/app", "MODE=prod"]);
  assertEquals(c.WorkingDir, "/opt/app/run");
  assertEquals(c.Cmd, ["/bin/sh", "-c", "run --fast"]);
  assertEquals(c.Entrypoint, ["/init"]);
  assertEquals(c.ExposedPorts, { "80/tcp": {}, "53/udp": {} });
  assertEquals(c.Labels, { a: "1", "b c": "2" });
  assertEquals(c.User, "app:app");
  assertEquals(c.Volumes, { "/data": {} });
  assertEquals(c.StopSignal, "SIGINT");
  assertEquals(c.OnBuild, ["RUN true"]);
  assertEquals(base.Env, ["PATH=/bin", "HOME=/root"], "the given config is unchanged");
  assertThrows(() => applyChanges({}, ["RUN true"]), Error, "RUN is not a valid change command");
  assertThrows(() => applyChanges({}, ["EXPOSE http"]), Error, "invalid port");
});
