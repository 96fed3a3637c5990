import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { GO_TYPE } from "./exec.ts";
import { formatInspect, formatList, TemplateError } from "./docker.ts";

const headers = { ID: "CONTAINER ID", Names: "NAMES", Status: "STATUS", Labels: "LABELS" };
const row = (id: string, name: string, status: string) => ({
  [GO_TYPE]: "*formatter.ContainerContext",
  ID: () => id,
  Names: () => name,
  Status: () => status,
  Labels: () => "",
  Label: (_k: unknown) => "",
});
const rows = [row("4f66ad9a0b2e", "t-fmt1", "Up 2 minutes"), row("9a1", "x", "Exited (0)")];

Deno.test("table directive: docker's header and tabwriter columns", () => {
  assertEquals(
    formatList("table {{.Names}}\\t{{.Status}}", rows, headers),
    "NAMES     STATUS\nt-fmt1    Up 2 minutes\nx         Exited (0)\n",
  );
  assertEquals(
    formatList("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", rows, headers),
    "CONTAINER ID   NAMES     STATUS\n" +
      "4f66ad9a0b2e   t-fmt1    Up 2 minutes\n" +
      "9a1            x         Exited (0)\n",
  );
  // Header functions keep the header text; .Label heads its column with the key's last part.
  assertEquals(
    formatList('table {{.Names | upper}}\\t{{.Label "com.example.app-name"}}', rows, headers),
    "NAMES     app name\nT-FMT1    \nX         \n",
  );
  // An empty list still has its header; a list format prints nothing.
  assertEquals(formatList("table {{.Names}}", [], headers), "NAMES\n");
  assertEquals(formatList("{{.Names}}", [], headers), "");
});

Deno.test("list formats: one line per row, json, \\t and \\n escapes", () => {
  assertEquals(formatList("{{.Names}}\\t{{.ID}}", rows, headers), "t-fmt1\t4f66ad9a0b2e\nx\t9a1\n");
  assertEquals(
    formatList("json", rows.slice(0, 1), headers),
    '{"ID":"4f66ad9a0b2e","Labels":"","Names":"t-fmt1","Status":"Up 2 minutes"}\n',
  );
});

Deno.test("a bad field fails the whole list with docker's message, exit code 1", () => {
  const err = assertThrows(() => formatList("{{.Bogus}}", rows, headers), TemplateError);
  assertEquals(
    err.message,
    'template parsing error: template: :1:2: executing "" at <.Bogus>: can\'t evaluate field Bogus in type *formatter.ContainerContext',
  );
  assertEquals(err.exitCode, 1);
  const parseErr = assertThrows(() => formatList("{{.Names", rows, headers), TemplateError);
  assertEquals(parseErr.message, "template parsing error: template: :1: unclosed action");
});

Deno.test("inspect -f: a line per object, failures apart, exit 64 for a bad template", () => {
  const objs = [{ State: { Running: true } }, { Other: 1 }];
  const { out, errors } = formatInspect("{{.State.Running}}", objs);
  assertEquals(out, "true\n");
  assertEquals(errors, [
    'template parsing error: template: :1:2: executing "" at <.State.Running>: map has no entry for key "State"',
  ]);
  assertEquals(formatInspect("{{.Other}}", [{ State: 1 }]).out, "\n");
  assertEquals(assertThrows(() => formatInspect("{{if}}", objs), TemplateError).exitCode, 64);
});
