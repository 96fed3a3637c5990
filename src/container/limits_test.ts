import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { checkLimits, LimitError, MIN_MEMORY } from "./limits.ts";
import { parseBytes, parseCpus } from "./flag_values.ts";

const TWO = () => 2;
const MB = 1024 * 1024;

function refused(limits: Parameters<typeof checkLimits>[0], message: string) {
  const err = assertThrows(() => checkLimits(limits, TWO), LimitError);
  assertEquals(err.message, message);
}

Deno.test("0 means no limit for memory, swap, cpus, shares; 0 and negatives for pids", () => {
  assertEquals(
    checkLimits({ memory: 0, memorySwap: 0, cpus: 0, cpuShares: 0, pidsLimit: 0 }, () => {
      throw new Error("the CPU count is not needed without --cpus");
    }),
    {
      memory: undefined,
      memorySwap: undefined,
      cpus: undefined,
      cpuShares: undefined,
      pidsLimit: undefined,
    },
  );
  assertEquals(checkLimits({ pidsLimit: -1 }, TWO).pidsLimit, undefined);
  assertEquals(checkLimits({ pidsLimit: -7 }, TWO).pidsLimit, undefined);
  assertEquals(checkLimits({ pidsLimit: 20 }, TWO).pidsLimit, 20);
  // --memory-swap -1 alone changes nothing; with --memory it is unlimited swap.
  assertEquals(checkLimits({ memorySwap: -1 }, TWO).memorySwap, undefined);
  assertEquals(checkLimits({ memory: 64 * MB, memorySwap: -1 }, TWO).memorySwap, -1);
});

Deno.test("memory: docker's floor, swap at least memory, swap needs memory, default swap", () => {
  refused({ memory: MIN_MEMORY - 1 }, "Minimum memory limit allowed is 6MB");
  refused({ memory: 1 }, "Minimum memory limit allowed is 6MB");
  assertEquals(checkLimits({ memory: MIN_MEMORY }, TWO).memory, MIN_MEMORY);
  refused(
    { memory: 64 * MB, memorySwap: 32 * MB },
    "Minimum memoryswap limit should be larger than memory limit, see usage",
  );
  refused(
    { memorySwap: 64 * MB },
    "You should always set the Memory limit when using Memoryswap limit, see usage",
  );
  assertEquals(checkLimits({ memory: 64 * MB, memorySwap: 64 * MB }, TWO).memorySwap, 64 * MB);
  assertEquals(checkLimits({ memory: 64 * MB }, TWO).memorySwap, 128 * MB);
});

Deno.test("memory beyond what the kernel takes is named, not written", () => {
  const huge = parseBytes("99999999999t", "--memory");
  const err = assertThrows(() => checkLimits({ memory: huge }, TWO), LimitError);
  assertEquals(err.message.startsWith("invalid value for --memory: "), true, err.message);
  assertEquals(err.message.includes("largest limit the kernel takes"), true, err.message);
  assertThrows(
    () => checkLimits({ memory: 64 * MB, memorySwap: huge }, TWO),
    LimitError,
  );
});

Deno.test("cpus: between 0.01 and the host's count, with docker's message", () => {
  const msg = "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available";
  refused({ cpus: 3 }, msg);
  refused({ cpus: 2.5 }, msg);
  refused({ cpus: -1 }, msg);
  refused({ cpus: 0.001 }, msg);
  assertEquals(checkLimits({ cpus: 2 }, TWO).cpus, 2);
  assertEquals(checkLimits({ cpus: 0.5 }, TWO).cpus, 0.5);
  assertEquals(checkLimits({ cpus: 0.01 }, TWO).cpus, 0.01);
});

Deno.test("cpu shares are clamped as cgroup v1 clamps them; negative refused", () => {
  assertEquals(checkLimits({ cpuShares: 1 }, TWO).cpuShares, 2);
  assertEquals(checkLimits({ cpuShares: 10_000_000 }, TWO).cpuShares, 262144);
  assertEquals(checkLimits({ cpuShares: 512 }, TWO).cpuShares, 512);
  assertThrows(() => checkLimits({ cpuShares: -5 }, TWO), LimitError);
});

Deno.test("sizes parse as docker's RAMInBytes; -1 only where unlimited is allowed", () => {
  assertEquals(parseBytes("64m", "--memory"), 64 * MB);
  assertEquals(parseBytes("64MiB", "--memory"), 64 * MB);
  assertEquals(parseBytes("1.5g", "--memory"), 1.5 * 1024 * MB);
  assertEquals(parseBytes("0", "--memory"), 0);
  assertEquals(parseBytes("-1", "--memory-swap", true), -1);
  assertThrows(() => parseBytes("-1", "--memory"));
  assertThrows(() => parseBytes("lots", "--memory"));
  assertEquals(parseCpus("0"), 0);
  assertEquals(parseCpus("1.5"), 1.5);
  assertEquals(parseCpus("-1"), -1);
  assertThrows(() => parseCpus("two"));
  assertThrows(() => parseCpus(""));
});
