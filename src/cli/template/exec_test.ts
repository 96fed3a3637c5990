import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { GO_TYPE, GoMap, parse, TemplateExecError } from "./exec.ts";
import { TemplateParseError } from "./parse.ts";

/** A container inspect object as docker's raw JSON gives it (a map, missingkey=error). */
const inspect = {
  Id: "4f66ad9a0b2e",
  Name: "/t-fmt1",
  State: { Status: "running", Running: true, Pid: 1234, ExitCode: 0, Health: null },
  Config: {
    Env: ["PATH=/usr/bin", "A=1"],
    Cmd: ["sh", "-c", "sleep 1"],
    Labels: new GoMap([["com.example.b", "2"], ["com.example.a", "1"]]),
  },
  Mounts: [{ Source: "/v1", Destination: "/data" }, { Source: "/v2", Destination: "/logs" }],
  Count: 3,
  Ratio: 0.5,
};

/** A struct as docker's ps context: methods, one with an argument. */
const psRow = {
  [GO_TYPE]: "*formatter.ContainerContext",
  ID: () => "4f66ad9a0b2e",
  Names: () => "t-fmt1",
  Status: () => "Up 2 minutes",
  Label: (name: unknown) => (name === "app" ? "web" : ""),
};

// [template, data, docker's output]
const cases: [string, unknown, string][] = [
  ["{{.State.Running}}", inspect, "true"],
  ["{{.State.Pid}} {{.State.Status}}", inspect, "1234 running"],
  ["{{.Name}}", inspect, "/t-fmt1"],
  [
    "{{json .State}}",
    inspect,
    '{"Status":"running","Running":true,"Pid":1234,"ExitCode":0,"Health":null}',
  ],
  ["{{.State | json}}", { State: "a<b>&c" }, '"a<b>&c"'],
  ["{{json .Config.Labels}}", inspect, '{"com.example.a":"1","com.example.b":"2"}'],
  ["{{.Config.Env}}", inspect, "[PATH=/usr/bin A=1]"],
  ["{{.Config.Labels}}", inspect, "map[com.example.a:1 com.example.b:2]"],
  ['{{index .Config.Labels "com.example.a"}}', inspect, "1"],
  ['{{index .Config.Labels "nope"}}', inspect, ""],
  ["{{.Config.Labels.nope}}", inspect, "<no value>"],
  ["{{index .Config.Env 1}}", inspect, "A=1"],
  ["{{index .Mounts 1 | json}}", inspect, '{"Source":"/v2","Destination":"/logs"}'],
  ["{{(index .Mounts 0).Source}}", inspect, "/v1"],
  ["{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", inspect, "/v1:/data /v2:/logs "],
  ["{{range $i, $m := .Mounts}}{{$i}}={{$m.Destination}};{{end}}", inspect, "0=/data;1=/logs;"],
  [
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}",
    inspect,
    "com.example.a=1,com.example.b=2,",
  ],
  ["{{range .Mounts}}{{$.Name}}{{end}}", inspect, "/t-fmt1/t-fmt1"],
  ["{{range .Nothing}}x{{else}}empty{{end}}", { Nothing: [] }, "empty"],
  [
    '{{range .Config.Env}}{{if eq . "A=1"}}{{break}}{{end}}{{.}};{{end}}',
    inspect,
    "PATH=/usr/bin;",
  ],
  [
    '{{range .Config.Env}}{{if eq . "A=1"}}{{continue}}{{end}}{{.}};{{end}}',
    inspect,
    "PATH=/usr/bin;",
  ],
  ["{{if .State.Running}}up{{else}}down{{end}}", inspect, "up"],
  [
    '{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{else}}?{{end}}',
    inspect,
    "r",
  ],
  ["{{if not .State.Running}}down{{else}}up{{end}}", inspect, "up"],
  ["{{if and .State.Running (gt .State.Pid 1)}}ok{{end}}", inspect, "ok"],
  ['{{or .Missing2 "default"}}', { Missing2: "" }, "default"],
  ["{{and 1 0 2}}", {}, "0"],
  ["{{if lt .Count 5}}small{{end}}", inspect, "small"],
  ["{{ne .Count 3}} {{ge .Count 3}} {{le .Count 2}}", inspect, "false true false"],
  ["{{with .State}}{{.Status}}{{end}}", inspect, "running"],
  ["{{with .State.Health}}{{.Status}}{{else}}no health{{end}}", inspect, "no health"],
  ["{{.State.Health}}", inspect, "<nil>"],
  ["{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", inspect, "2 7 2"],
  ['{{join .Config.Cmd " "}}', inspect, "sh -c sleep 1"],
  ['{{split .Name "f"}}', inspect, "[/t- mt1]"],
  ['{{index (split "a:b:c" ":") 1}}', {}, "b"],
  [
    '{{lower "ABC"}} {{upper .State.Status}} {{title "hello wide world"}}',
    inspect,
    "abc RUNNING Hello Wide World",
  ],
  ["{{println .Name}}", inspect, "/t-fmt1\n"],
  ['{{println "a" 1 true}}', {}, "a 1 true\n"],
  ['{{print "a" "b" 1 2 "c"}}', {}, "ab1 2c"],
  [
    '{{printf "%s=%d %v %q" "pid" .State.Pid .State.Running .Name}}',
    inspect,
    'pid=1234 true "/t-fmt1"',
  ],
  [
    '{{printf "%-8s|%5d|%05d|%.2f|%x" "ab" 42 42 .Ratio 255}}',
    inspect,
    "ab      |   42|00042|0.50|ff",
  ],
  ['{{printf "%d" "x"}} {{printf "%s %s" "a"}}', {}, "%!d(string=x) a %!s(MISSING)"],
  ["{{.Ratio}} {{.Count}}", inspect, "0.5 3"],
  ['{{$n := .Name}}{{$n}}{{$n = "x"}}{{$n}}', inspect, "/t-fmt1x"],
  ["a  {{- .Count -}}  b", inspect, "a3b"],
  ["{{if .State.Running -}}\n  up  {{- else -}}\n  down {{- end}}.", inspect, "up."],
  ["{{if not .State.Running -}} up {{- else -}}\n  down\n{{- end -}}\n.", inspect, "down."],
  ["{{range .Config.Env -}}\n  [{{.}}]\n{{end}}", inspect, "[PATH=/usr/bin]\n[A=1]\n"],
  ["{{-3}} {{- -3 -}} !", {}, "-3-3!"],
  ["{{/* a comment */}}x{{- /* trimmed */ -}} y", {}, "xy"],
  ['{{"quoted }} braces"}} {{`raw \\n`}}', {}, "quoted }} braces raw \\n"],
  ['{{.ID}}\t{{.Names}} {{.Label "app"}}', psRow, "4f66ad9a0b2e\tt-fmt1 web"],
  ["{{json .}}", psRow, '{"ID":"4f66ad9a0b2e","Names":"t-fmt1","Status":"Up 2 minutes"}'],
  ['{{.Names | printf "%s!"}}', psRow, "t-fmt1!"],
  ["{{eq .Count 1 2 3}}", inspect, "true"],
  ["{{range 3}}{{.}}{{end}}", {}, "012"],
  ["{{pad .Name 1 2}}|{{truncate .Name 3}}", inspect, " /t-fmt1  |/t-"],
  ["{{.}}", "plain", "plain"],
  // Go's strings.Title: any non-letter, non-digit, non-underscore starts a word.
  ['{{title "don\'t stop_it 3d"}}', {}, "Don'T Stop_it 3d"],
];

Deno.test("templates give docker's output", () => {
  for (const [src, data, want] of cases) {
    let got: string;
    try {
      got = parse(src).execute(data);
    } catch (err) {
      throw new Error(`${src}: ${err}`);
    }
    assertEquals(got, want, src);
  }
});

// [template, data, docker's message]
const execErrors: [string, unknown, string][] = [
  [
    "{{.Bogus}}",
    psRow,
    'template: :1:2: executing "" at <.Bogus>: can\'t evaluate field Bogus in type *formatter.ContainerContext',
  ],
  [
    "{{.State.Bogus}}",
    inspect,
    'template: :1:2: executing "" at <.State.Bogus>: map has no entry for key "Bogus"',
  ],
  [
    "x\n  {{.Bogus}}",
    inspect,
    'template: :2:4: executing "" at <.Bogus>: map has no entry for key "Bogus"',
  ],
  [
    "{{.Names.Bogus}}",
    psRow,
    'template: :1:2: executing "" at <.Names.Bogus>: can\'t evaluate field Bogus in type string',
  ],
  [
    "{{index .Config.Env 5}}",
    inspect,
    'template: :1:2: executing "" at <index .Config.Env 5>: error calling index: index out of range: 5',
  ],
  [
    "{{.State.Health.Status}}",
    inspect,
    'template: :1:2: executing "" at <.State.Health.Status>: nil pointer evaluating interface {}.Status',
  ],
  [
    "{{len}}",
    {},
    'template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 0',
  ],
  [
    "{{upper .Count}}",
    inspect,
    'template: :1:2: executing "" at <upper .Count>: error calling upper: wrong type for value; expected string; got int',
  ],
  [
    "{{eq .Name 1}}",
    inspect,
    'template: :1:2: executing "" at <eq .Name 1>: error calling eq: incompatible types for comparison',
  ],
];

Deno.test("template errors read like Go's", () => {
  for (const [src, data, want] of execErrors) {
    const err = assertThrows(() => parse(src).execute(data), TemplateExecError);
    assertEquals(err.message, want, src);
  }
});

const parseErrors: [string, string][] = [
  ["{{.ID", "template: :1: unclosed action"],
  ["{{if .A}}x", "template: :1: unexpected EOF"],
  ["{{end}}", "template: :1: unexpected {{end}}"],
  ["{{bogus .A}}", 'template: :1: function "bogus" not defined'],
  ["x\n{{.A | nope}}", 'template: :2: function "nope" not defined'],
  ["{{break}}", "template: :1: {{break}} outside {{range}}"],
];

Deno.test("templates that do not parse are refused like Go's", () => {
  for (const [src, want] of parseErrors) {
    const err = assertThrows(() => parse(src), TemplateParseError);
    assertEquals(err.message, want, src);
  }
});
