import { assertEquals } from "../../tests/assert.ts";
import { cachedDefaultFilter } from "./seccomp_cache.ts";
import { compileProfile, encodeFilter } from "./seccomp.ts";
import { DEFAULT_PROFILE } from "./seccomp_profile.ts";

const CAPS = ["CAP_CHOWN", "CAP_KILL"];
const fresh = (caps: string[], kernel: string) =>
  encodeFilter(compileProfile(DEFAULT_PROFILE, { capabilities: caps, kernel }));

Deno.test("a cached filter is the compiled filter, and the second start does not compile", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let compiles = 0;
    const compile = () => {
      compiles++;
      return fresh(CAPS, "6.1.0");
    };
    const first = cachedDefaultFilter(dir, CAPS, "6.1.0", compile);
    const second = cachedDefaultFilter(dir, CAPS, "6.1.0", compile);
    assertEquals(compiles, 1);
    assertEquals(second, first);
    assertEquals(second, fresh(CAPS, "6.1.0"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("another capability set or kernel gets its own filter", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const admin = [...CAPS, "CAP_SYS_ADMIN"];
    cachedDefaultFilter(dir, CAPS, "6.1.0", () => fresh(CAPS, "6.1.0"));
    const withAdmin = cachedDefaultFilter(dir, admin, "6.1.0", () => fresh(admin, "6.1.0"));
    assertEquals(withAdmin, fresh(admin, "6.1.0"));
    assertEquals(withAdmin.length === fresh(CAPS, "6.1.0").length, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an entry whose stored key differs is recompiled, never used", async () => {
  const dir = await Deno.makeTempDir();
  try {
    cachedDefaultFilter(dir, CAPS, "6.1.0", () => fresh(CAPS, "6.1.0"));
    const [entry] = [...Deno.readDirSync(dir)];
    const path = `${dir}/${entry.name}`;
    const data = Deno.readFileSync(path);
    data[10] ^= 1; // corrupt the stored key, as a colliding entry would differ
    Deno.writeFileSync(path, data);
    let compiles = 0;
    const got = cachedDefaultFilter(dir, CAPS, "6.1.0", () => {
      compiles++;
      return fresh(CAPS, "6.1.0");
    });
    assertEquals(compiles, 1);
    assertEquals(got, fresh(CAPS, "6.1.0"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
