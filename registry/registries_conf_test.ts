import {
  assertEquals,
  assertOk,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import { parseReference } from "./reference.ts";
import {
  BlockedRegistryError,
  EMPTY_REGISTRIES_CONF,
  isInsecureDomain,
  isShortName,
  loadRegistriesConf,
  mergeRegistriesConf,
  parseRegistriesConf,
  pullEndpoints,
  pushEndpoint,
  qualifyName,
  type RegistriesConf,
  RegistriesConfError,
  registriesConfFiles,
} from "./registries_conf.ts";

const FILE = "/etc/test/registries.conf";

async function conf(text: string): Promise<RegistriesConf> {
  return mergeRegistriesConf([await parseRegistriesConf(text, FILE)]);
}

/** The endpoints as `[reference, insecure, mirror]`. */
function endpoints(c: RegistriesConf, name: string): [string, boolean, boolean][] {
  return pullEndpoints(c, parseReference(name)).map((e) => [
    e.ref.toString(),
    e.insecure,
    e.mirror,
  ]);
}

const D = "sha256:" + "a".repeat(64);

Deno.test("podman's example file: search list, rewrite, mirrors, insecure", async () => {
  const c = await conf(`
# comments and unknown top-level keys are fine, as for podman
short-name-mode = "enforcing"
unqualified-search-registries = ["quay.io", "docker.io"]

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:5000"

[[registry.mirror]]
location = "mirror.example.com:8443/hub"
insecure = true

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = true

[[registry]]
location = "plain.example.com:5000"
insecure = true
`);
  assertEquals(c.unqualifiedSearchRegistries, ["quay.io", "docker.io"]);
  assertEquals(endpoints(c, "docker.io/library/busybox"), [
    ["127.0.0.1:5000/library/busybox:latest", false, true],
    ["mirror.example.com:8443/hub/library/busybox:latest", true, true],
    ["docker.io/library/busybox:latest", false, false],
  ]);
  // Longest prefix; the rest of the name follows the location; tag and digest are kept.
  assertEquals(endpoints(c, "example.com/foo/app:1"), [
    ["internal.example.com/bar/app:1", true, false],
  ]);
  assertEquals(endpoints(c, `example.com/foo@${D}`), [
    [`internal.example.com/bar@${D}`, true, false],
  ]);
  // A prefix matches at a path boundary only.
  assertEquals(endpoints(c, "example.com/foobar/app"), [[
    "example.com/foobar/app:latest",
    false,
    false,
  ]]);
  // Without prefix the location is the prefix.
  assertEquals(endpoints(c, "plain.example.com:5000/x"), [
    ["plain.example.com:5000/x:latest", true, false],
  ]);
  assertEquals(isInsecureDomain(c, "plain.example.com:5000"), true);
  assertEquals(isInsecureDomain(c, "quay.io"), false);
  // Mirrors are for pulls: a push goes to the location.
  const push = pushEndpoint(c, parseReference("docker.io/library/busybox:1"));
  assertEquals([push.ref.toString(), push.mirror], ["docker.io/library/busybox:1", false]);
  const pushRewritten = pushEndpoint(c, parseReference("example.com/foo/app:2"));
  assertEquals([pushRewritten.ref.toString(), pushRewritten.insecure], [
    "internal.example.com/bar/app:2",
    true,
  ]);
});

Deno.test("short names go to the first search registry; none configured keeps docker.io", async () => {
  assertEquals(qualifyName(EMPTY_REGISTRIES_CONF, "busybox"), "busybox");
  assertEquals(
    parseReference(qualifyName(EMPTY_REGISTRIES_CONF, "busybox")).toString(),
    "docker.io/library/busybox:latest",
  );
  const quay = await conf(`unqualified-search-registries = ["quay.io", "docker.io"]`);
  assertEquals(qualifyName(quay, "busybox:1.36"), "quay.io/busybox:1.36");
  assertEquals(qualifyName(quay, "user/app"), "quay.io/user/app");
  assertEquals(qualifyName(quay, "localhost/app"), "localhost/app");
  assertEquals(qualifyName(quay, "127.0.0.1:5000/app"), "127.0.0.1:5000/app");
  assertEquals(qualifyName(quay, "docker.io/library/busybox"), "docker.io/library/busybox");
  // docker.io first: the official-image `library/` is added as docker does.
  const hub = await conf(`unqualified-search-registries = ["docker.io"]`);
  assertEquals(
    parseReference(qualifyName(hub, "busybox")).toString(),
    "docker.io/library/busybox:latest",
  );
  assertEquals(isShortName("busybox"), true);
  assertEquals(isShortName("user/app"), true);
  assertEquals(isShortName("host.io/app"), false);
  assertEquals(isShortName("Host/app"), false);
});

Deno.test("mirror usage: digest-only and tag-only mirrors, mirror-by-digest-only", async () => {
  const c = await conf(`
[[registry]]
prefix = "r.example.com"
[[registry.mirror]]
location = "digests.example.com"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.example.com"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "s.example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.example.com"
`);
  assertEquals(endpoints(c, "r.example.com/a:1").map((e) => e[0]), [
    "tags.example.com/a:1",
    "r.example.com/a:1",
  ]);
  assertEquals(endpoints(c, `r.example.com/a@${D}`).map((e) => e[0]), [
    `digests.example.com/a@${D}`,
    `r.example.com/a@${D}`,
  ]);
  assertEquals(endpoints(c, "s.example.com/a").map((e) => e[0]), ["s.example.com/a:latest"]);
  assertEquals(endpoints(c, `s.example.com/a@${D}`).map((e) => e[0]), [
    `m.example.com/a@${D}`,
    `s.example.com/a@${D}`,
  ]);
});

Deno.test("blocked registries and wildcard prefixes refuse pull and push", async () => {
  const c = await conf(`
[[registry]]
prefix = "*.evil.example"
blocked = true

[[registry]]
prefix = "docker.io/library/forbidden"
location = "docker.io/library/forbidden"
blocked = true
[[registry.mirror]]
location = "127.0.0.1:5000"
`);
  const err = assertThrows(
    () => pullEndpoints(c, parseReference("forbidden:1")),
    BlockedRegistryError,
  );
  assertStringIncludes(err.message, "docker.io/library/forbidden is blocked in " + FILE);
  assertStringIncludes(err.message, "docker.io/library/forbidden:1");
  assertThrows(
    () => pullEndpoints(c, parseReference("a.evil.example:444/x")),
    BlockedRegistryError,
  );
  assertThrows(() => pushEndpoint(c, parseReference("b.c.evil.example/x")), BlockedRegistryError);
  // Neither a neighbour of the prefix nor the bare domain is covered.
  assertEquals(endpoints(c, "forbiddenfruit").length, 1);
  assertEquals(endpoints(c, "evil.example/x").length, 1);
});

Deno.test("drop-ins: later files replace the search list and entries of the same prefix", async () => {
  const a = await parseRegistriesConf(
    `unqualified-search-registries = ["a.example.com"]
[[registry]]
prefix = "docker.io"
blocked = true
[[registry]]
prefix = "keep.example.com"
insecure = true
`,
    "/a.conf",
  );
  const b = await parseRegistriesConf(
    `[[registry]]
prefix = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000"
`,
    "/b.conf",
  );
  const c = mergeRegistriesConf([a, b]);
  assertEquals(c.unqualifiedSearchRegistries, ["a.example.com"]);
  assertEquals(endpoints(c, "docker.io/x/y").map((e) => e[0]), [
    "127.0.0.1:5000/x/y:latest",
    "docker.io/x/y:latest",
  ]);
  assertEquals(isInsecureDomain(c, "keep.example.com"), true);
  const d = mergeRegistriesConf([
    a,
    b,
    await parseRegistriesConf(`unqualified-search-registries = []`, "/c.conf"),
  ]);
  assertEquals(qualifyName(d, "busybox"), "busybox");
});

// [file text, what the error must say]
// deno-fmt-ignore
const BAD: [string, string][] = [
  [`unqualified-search-registries = ["quay.io"`, "line 1, column"],
  [`a = 1\nb = = 2`, "line 2, column"],
  [`unqualified-search-registries = "quay.io"`, "unqualified-search-registries must be an array of strings"],
  [`unqualified-search-registries = [1]`, "line 1: unqualified-search-registries[0] must be a string, not 1"],
  [`unqualified-search-registries = ["https://quay.io"]`, `unqualified-search-registries[0]: "https://quay.io" is not a registry host`],
  [`[registry]\nprefix = "a.io"`, "not a single [registry] table"],
  [`[[registry]]\ninsecure = true`, "[[registry]] #1: needs a prefix or a location"],
  [`# c\n[[registry]]\nprefix = "a.io"\ninsecure = "yes"`, `line 4: [[registry]] #1 (prefix "a.io"): insecure must be true or false, not "yes"`],
  [`[[registry]]\nprefix = "a.io"\nblocked = 1`, "blocked must be true or false, not 1"],
  [`[[registry]]\nprefix = "a.io"\n  "blockd" = true`, `line 3: [[registry]] #1: unknown key "blockd"`],
  [`[[registry]]\nlocation = "http://a.io"`, "URI schemes are not supported"],
  [`[[registry]]\nprefix = "a.io/UPPER"`, "invalid repository path after the host"],
  [`[[registry]]\nprefix = "a.io"\n[[registry]]\nprefix = "a.io/"`, `line 3: [[registry]] #2: prefix "a.io" is defined twice`],
  [`[[registry]]\nprefix = "*.a.io"\nlocation = "b.io"`, "a wildcard prefix cannot have a location"],
  [`[[registry]]\nprefix = "a.io"\n[[registry.mirror]]\ninsecure = true`, `line 3: [[registry]] #1 (prefix "a.io"), [[registry.mirror]] #1: location is required`],
  [`[[registry]]\nprefix = "a.io"\n[[registry]]\nprefix = "b.io"\n[[registry.mirror]]\nlocation = "x.io"\n[[registry.mirror]]\nlocation = "http://m"`, `line 8: [[registry]] #2 (prefix "b.io"), [[registry.mirror]] #2: location "http://m": URI schemes`],
  [`registry = [{ prefix = 1 }]`, "[[registry]] #1: prefix must be a string, not 1"],
  [`[[registry]]\nprefix = "a.io"\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "sometimes"`, `pull-from-mirror must be "all", "digest-only" or "tag-only"`],
  [`[[registry]]\nprefix = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "all"`, "cannot be set while the registry sets mirror-by-digest-only"],
  [`[registries.search]\nregistries = ["quay.io"]`, "version 1 format"],
];

Deno.test("bad files: errors name the file, the line or key, and the cause", async () => {
  for (const [text, expected] of BAD) {
    const err = await assertRejects(() => parseRegistriesConf(text, FILE), RegistriesConfError);
    assertOk(err.message.startsWith(`${FILE}: `), `names the file: ${err.message}`);
    assertStringIncludes(err.message, expected);
    assertOk(!err.message.includes("\n"), `one line: ${JSON.stringify(err.message)}`);
  }
});

Deno.test("a rewrite that leaves no repository is an error naming the file", async () => {
  const c = await conf(
    `[[registry]]\nprefix = "docker.io/library/busybox"\nlocation = "127.0.0.1:5000"`,
  );
  const err = assertThrows(() => pullEndpoints(c, parseReference("busybox")), RegistriesConfError);
  assertStringIncludes(err.message, `${FILE}: [[registry]] prefix "docker.io/library/busybox"`);
});

Deno.test("which files are read, as containers/image picks them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-regconf-" });
  try {
    const system = `${dir}/etc/registries.conf`;
    const home = `${dir}/home`;
    const user = `${home}/.config/containers/registries.conf`;
    await Deno.mkdir(`${system}.d`, { recursive: true });
    await Deno.mkdir(`${user}.d`, { recursive: true });
    await Deno.writeTextFile(system, `unqualified-search-registries = ["sys.example.com"]`);
    await Deno.writeTextFile(
      `${system}.d/20-b.conf`,
      `unqualified-search-registries = ["b.example.com"]`,
    );
    await Deno.writeTextFile(`${system}.d/10-a.conf`, "");
    await Deno.writeTextFile(`${system}.d/ignored.txt`, "not toml [");
    await Deno.writeTextFile(`${user}.d/50-user.conf`, "");
    const paths = { override: undefined, home, system };
    assertEquals(await registriesConfFiles(paths), [
      system,
      `${system}.d/10-a.conf`,
      `${system}.d/20-b.conf`,
      `${user}.d/50-user.conf`,
    ]);
    assertEquals((await loadRegistriesConf(paths)).unqualifiedSearchRegistries, ["b.example.com"]);
    // A user file replaces the system file and its drop-ins.
    await Deno.writeTextFile(user, `unqualified-search-registries = ["user.example.com"]`);
    assertEquals(await registriesConfFiles(paths), [user, `${user}.d/50-user.conf`]);
    assertEquals((await loadRegistriesConf(paths)).unqualifiedSearchRegistries, [
      "user.example.com",
    ]);
    // CONTAINERS_REGISTRIES_CONF alone, without drop-ins.
    assertEquals(await registriesConfFiles({ ...paths, override: system }), [system]);
    const missing = await assertRejects(
      () => loadRegistriesConf({ ...paths, override: `${dir}/nope.conf` }),
      RegistriesConfError,
    );
    assertStringIncludes(
      missing.message,
      `${dir}/nope.conf: cannot read it: no such file (named by CONTAINERS_REGISTRIES_CONF)`,
    );
    // A broken drop-in is named.
    await Deno.writeTextFile(`${user}.d/50-user.conf`, `[[registry]]\nprefix = 3`);
    const bad = await assertRejects(() => loadRegistriesConf(paths), RegistriesConfError);
    assertStringIncludes(
      bad.message,
      `${user}.d/50-user.conf: line 2: [[registry]] #1: prefix must be a string, not 3`,
    );
    // No file at all: docker's behaviour.
    assertEquals(
      await loadRegistriesConf({
        override: undefined,
        home: `${dir}/none`,
        system: `${dir}/none.conf`,
      }),
      EMPTY_REGISTRIES_CONF,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
