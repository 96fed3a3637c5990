import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { EmulationError } from "../image/emulation.ts";
import { parseLogOpts } from "./log_opts.ts";
import { parsePullPolicy, parseRunPlatform } from "./run_image.ts";
import { inspectHostConfig, runOptionsFrom } from "./run_options.ts";
import { parseSysctls } from "./sysctl.ts";
import { LogWriter, readLogs } from "./logs.ts";

function refused(fn: () => unknown, message: string) {
  assertEquals(assertThrows(fn, UsageError).message, message);
}

Deno.test("--sysctl: docker's namespaced keys only; net.* not with the host's network", () => {
  assertEquals(
    parseSysctls(["net.ipv4.ip_forward=1", "kernel.shmmax=1=2", "fs.mqueue.msg_max=20"], "none"),
    [["net.ipv4.ip_forward", "1"], ["kernel.shmmax", "1=2"], ["fs.mqueue.msg_max", "20"]],
  );
  assertEquals(parseSysctls(["kernel.sem=1 2 3 4", "kernel.sem=5 6 7 8"], "private"), [
    ["kernel.sem", "5 6 7 8"],
  ]);
  for (
    const v of [
      "kernel.hostname=x",
      "vm.swappiness=1",
      "net.ipv4",
      "=1",
      "net../x=1",
      "net.//.x=1",
      "net./=1",
    ]
  ) {
    refused(
      () => parseSysctls([v], "private"),
      `invalid argument "${v}" for "--sysctl" flag: sysctl '${v}' is not allowed`,
    );
  }
  refused(
    () => parseSysctls(["net.core.somaxconn=1"], "host"),
    `sysctl "net.core.somaxconn" not allowed in host network namespace`,
  );
  assertEquals(parseSysctls(["kernel.shmmax=1"], "host"), [["kernel.shmmax", "1"]]);
  assertEquals(parseSysctls(["net.ipv4.conf.eth0/100.forwarding=1"], "private").length, 1);
});

Deno.test("--log-opt: max-size and max-file as docker's json-file driver reads them", () => {
  assertEquals(parseLogOpts([]), undefined);
  assertEquals(parseLogOpts(["max-size=10k", "max-file=3"]), {
    maxSize: 10240,
    maxFile: 3,
    given: { "max-size": "10k", "max-file": "3" },
  });
  assertEquals(parseLogOpts(["max-size=1m"])?.maxFile, 1);
  refused(() => parseLogOpts(["max-file=0"]), "max-file cannot be less than 1");
  refused(
    () => parseLogOpts(["max-file=2"]),
    "max-file cannot be greater than 1 without max-size",
  );
  refused(() => parseLogOpts(["max-size=0"]), "max-size must be a positive number: 0");
  refused(() => parseLogOpts(["labels=a"]), "unknown log opt 'labels' for json-file log driver");
  refused(() => parseLogOpts(["max-size"]), "invalid key value pair format in --log-opt: max-size");
});

Deno.test("--pull and --platform values", () => {
  assertEquals(parsePullPolicy(undefined), "missing");
  assertEquals(parsePullPolicy("always"), "always");
  refused(
    () => parsePullPolicy("yes"),
    `invalid pull option: 'yes': must be one of "always", "missing" or "never"`,
  );
  assertEquals(parseRunPlatform(undefined), undefined);
  assertEquals(parseRunPlatform("linux/amd64"), { os: "linux", architecture: "amd64" });
  assertEquals(parseRunPlatform("x86_64"), { os: "linux", architecture: "amd64" });
  // arm64 through the host's qemu-aarch64 handler (tests/install_deps.sh registers it).
  assertEquals(parseRunPlatform("linux/arm64"), { os: "linux", architecture: "arm64" });
  assertThrows(() => parseRunPlatform("windows/amd64"), EmulationError);
});

Deno.test("--shm-size, --group-add: checked at create; 0 is docker's default size", () => {
  const flags = { network: "private" };
  assertEquals(runOptionsFrom({ ...flags, shmSize: "0" }, "private"), {});
  assertEquals(runOptionsFrom({ ...flags, shmSize: "1g" }, "private").shmSize, 1024 ** 3);
  assertThrows(() => runOptionsFrom({ ...flags, shmSize: "-1" }, "private"), UsageError);
  assertEquals(
    runOptionsFrom({ ...flags, groupAdd: ["audio", "44"] }, "private").groupAdd,
    ["audio", "44"],
  );
  assertThrows(() => runOptionsFrom({ ...flags, groupAdd: ["a:b"] }, "private"), UsageError);
  assertThrows(() => runOptionsFrom({ ...flags, groupAdd: ["4294967296"] }, "private"), UsageError);
  const hc = inspectHostConfig({ shmSize: 1024 } as Parameters<typeof inspectHostConfig>[0]);
  assertEquals([hc.ShmSize, hc.Init, hc.GroupAdd], [1024, false, null]);
});

Deno.test("LogWriter rotates before a write that would pass max-size; readLogs reads in order", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c-json.log`;
  try {
    const log = await LogWriter.open(path, { maxSize: 300, maxFile: 3 });
    // Written concurrently, as stdout's and stderr's pumps do: one write at a time, in order.
    await Promise.all(Array.from({ length: 40 }, (_, i) => log.write("stdout", `line ${i}\n`)));
    log.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
    for (const n of names) assertEquals(Deno.statSync(`${dir}/${n}`).size <= 300, true);
    const lines = (await readLogs(path)).map((e) => Number(e.log.slice(5)));
    assertEquals(lines.at(-1), 39);
    lines.forEach((n, i) => assertEquals(n, lines[0] + i));
    assertEquals((await readLogs(path, { tail: 2 })).map((e) => e.log), ["line 38\n", "line 39\n"]);
    // max-file 1: the one file starts again.
    const one = await LogWriter.open(`${dir}/one.log`, { maxSize: 200, maxFile: 1 });
    for (let i = 0; i < 20; i++) await one.write("stderr", `entry ${i}\n`);
    one.close();
    assertEquals(Deno.statSync(`${dir}/one.log`).size <= 200, true);
    assertEquals((await readLogs(`${dir}/one.log`)).at(-1)?.log, "entry 19\n");
    assertEquals(Deno.statSync(`${dir}/one.log`).isFile, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
