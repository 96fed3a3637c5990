import { assertEquals } from "../tests/assert.ts";
import { acceptFd, listenUnix, sendFdToPath } from "./fd_passing.ts";
import { closeFd, pipe, readFd, writeFd } from "./process.ts";

Deno.test("sendFdToPath and acceptFd: the fd received is the one sent (SCM_RIGHTS)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-fdpass-" });
  const listener = listenUnix(`${dir}/sock`);
  const [r, w] = pipe();
  try {
    const received = acceptFd(listener);
    sendFdToPath(`${dir}/sock`, w, "pipe");
    const fd = await received;
    try {
      writeFd(fd, new TextEncoder().encode("through the passed fd"));
    } finally {
      closeFd(fd);
    }
    closeFd(w);
    assertEquals(new TextDecoder().decode(await readFd(r, 64)), "through the passed fd");
  } finally {
    closeFd(r);
    closeFd(listener);
    await Deno.remove(dir, { recursive: true });
  }
});
