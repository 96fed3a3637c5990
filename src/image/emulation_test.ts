/**
 * The binfmt_misc check: the host's real qemu-aarch64 handler (tests/install_deps.sh registers
 * it) serves linux/arm64, and each missing piece is named. The missing pieces are shown on
 * directories laid out as the kernel lists handlers, built from the host's own handler file.
 */
import { assertEquals, assertOk, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import {
  BINFMT_MISC,
  checkEmulation,
  elfHeader,
  EmulationError,
  handlerMatches,
  parseHandler,
} from "./emulation.ts";

const ARM64 = { os: "linux", architecture: "arm64" };
const hostHandler = () => Deno.readTextFileSync(`${BINFMT_MISC}/qemu-aarch64`);

Deno.test("the host's qemu-aarch64 handler serves linux/arm64 (and arm64/v8), not amd64", () => {
  const h = checkEmulation(ARM64);
  assertEquals(h.name, "qemu-aarch64");
  assertOk(h.flags.includes("F"), h.flags);
  assertEquals(checkEmulation({ ...ARM64, variant: "v8" }).name, "qemu-aarch64");
  const parsed = parseHandler("qemu-aarch64", hostHandler());
  assertOk(handlerMatches(parsed, elfHeader(ARM64)!));
  assertOk(!handlerMatches(parsed, elfHeader({ os: "linux", architecture: "amd64" })!));
  // The header of the arm64 busybox as the kernel sees it: ET_EXEC, e_machine 183.
  assertEquals([...elfHeader(ARM64)!.slice(16)], [2, 0, 0xb7, 0]);
});

/** A directory laid out as binfmt_misc lists handlers: status plus `handlers`. */
async function fakeMount(handlers: Record<string, string>, status = "enabled"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-binfmt-" });
  await Deno.writeTextFile(`${dir}/status`, `${status}\n`);
  await Deno.writeTextFile(`${dir}/register`, "");
  for (const [name, text] of Object.entries(handlers)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

Deno.test("each missing piece is one message naming it", async () => {
  const real = hostHandler();
  const cases: [string, Record<string, string> | undefined, string][] = [
    ["not mounted", undefined, "binfmt_misc is not mounted at"],
    ["no handler", {}, "no binfmt_misc handler for aarch64 programs is registered"],
    [
      "disabled",
      { "qemu-aarch64": real.replace(/^enabled/, "disabled") },
      "qemu-aarch64 is disabled",
    ],
    [
      "no F",
      { "qemu-aarch64": real.replace(/^flags: .*$/m, "flags: P") },
      "lacks the F flag",
    ],
  ];
  for (const [name, handlers, expected] of cases) {
    const dir = handlers === undefined
      ? await Deno.makeTempDir({ prefix: "tsbox-binfmt-" })
      : await fakeMount(handlers);
    try {
      const err = assertThrows(() => checkEmulation(ARM64, dir), EmulationError);
      assertStringIncludes(err.message, expected, name);
      assertStringIncludes(err.message, "linux/arm64 programs cannot run on this host", name);
      assertOk(!err.message.includes("\n"), `${name}: one line`);
      if (name !== "disabled") assertStringIncludes(err.message, "qemu-user-static", name);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  const other = await fakeMount({ "qemu-aarch64": real }, "disabled");
  try {
    assertStringIncludes(
      assertThrows(() => checkEmulation(ARM64, other), EmulationError).message,
      "binfmt_misc is disabled",
    );
  } finally {
    await Deno.remove(other, { recursive: true });
  }
  assertStringIncludes(
    assertThrows(() => checkEmulation({ os: "windows", architecture: "amd64" }), EmulationError)
      .message,
    "Linux programs",
  );
});
