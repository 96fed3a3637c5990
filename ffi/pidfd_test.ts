/**
 * pidfd_open and the wait on it, with real processes: a running process's pidfd is not readable,
 * its end makes it so, an eventfd wakes the wait, and a pid that does not exist gives none.
 */
import { assertEquals, assertOk } from "../tests/assert.ts";
import { closeWaitFd, pidfdOpen, waitExit, wake, wakeFd } from "./pidfd.ts";

Deno.test("pidfd: waits for a process to end, or for a wake", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const pidfd = pidfdOpen(child.pid);
  const stop = wakeFd();
  try {
    assertOk(pidfd !== undefined && pidfd >= 0);
    assertEquals(await waitExit(pidfd!, stop, 0), "timeout");
    const waiting = waitExit(pidfd!, stop);
    child.kill("SIGKILL");
    assertEquals(await waiting, "exited");
    await child.status;
    // Woken: with no process to wait for (-1), and with one.
    const other = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const otherFd = pidfdOpen(other.pid)!;
    const woken = waitExit(otherFd, stop);
    wake(stop);
    assertEquals(await woken, "woken");
    assertEquals(await waitExit(-1, stop, 1000), "woken");
    other.kill("SIGKILL");
    await other.status;
    closeWaitFd(otherFd);
  } finally {
    if (pidfd !== undefined) closeWaitFd(pidfd);
    closeWaitFd(stop);
  }
});

Deno.test("pidfd: a pid with no process gives none", () => {
  // pid_max is at most 2^22: a pid above it never exists.
  assertEquals(pidfdOpen(4_194_304 + 7), undefined);
});
