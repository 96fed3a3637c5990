import { assertEquals } from "../../../tests/assert.ts";
import { formatInspect } from "./docker.ts";
import { inspectTemplateData } from "./inspect_data.ts";

const container = {
  Name: "/t-fmt1",
  State: { Status: "running", Running: true },
  Config: { Labels: { app: "web", "com.x": "1" }, Env: ["A=1"] },
  NetworkSettings: { Ports: null },
};

const run = (format: string, obj: unknown = container) =>
  formatInspect(format, [inspectTemplateData(obj)]);

Deno.test("inspect data: docker's maps answer a missing key with <no value>", () => {
  assertEquals(run("{{.Config.Labels.app}} {{.Config.Labels.nope}}").out, "web <no value>\n");
  assertEquals(run('{{index .Config.Labels "com.x"}}').out, "1\n");
  assertEquals(run("{{json .Config.Labels}}").out, '{"app":"web","com.x":"1"}\n');
  // A nil map: null in JSON, empty when read or ranged over.
  assertEquals(
    run("{{json .NetworkSettings.Ports}} {{len .NetworkSettings.Ports}}").out,
    "null 0\n",
  );
  assertEquals(
    run("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}").out,
    "app=web;com.x=1;\n",
  );
});

Deno.test("inspect data: an unknown struct field is an error naming the key", () => {
  const { out, errors } = run("{{.State.Runing}}");
  assertEquals(out, "\n");
  assertEquals(errors, [
    'template parsing error: template: :1:2: executing "" at <.State.Runing>: map has no entry for key "Runing"',
  ]);
  // Struct fields keep docker's order in JSON.
  assertEquals(run("{{json .State}}").out, '{"Status":"running","Running":true}\n');
});
