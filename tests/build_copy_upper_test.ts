/**
 * COPY writes what goes into directories it made straight into the step's overlay upper
 * directory (src/builder/copy.ts, CopyOptions.upper). Whatever path a file takes, the image must
 * be the one a copy through the overlay gives: a tree under a new directory below an existing
 * image directory, owners from --chown, a symlink, hard links, and a second source whose names
 * overlap the first's (the later one wins, through the overlay, over files written directly),
 * then a later step that reads it all, and the base image's files left alone.
 */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tsbox } from "./cli.ts";

rootTest(
  "build: COPY into new directories gives the same image as through the overlay",
  async () => {
    const root = await sharedBusyboxRoot();
    const ctx = await dirWith({
      "a/sub/x": "a-x\n",
      "a/sub/y": "a-y\n",
      "a/sub/deep/z": "a-z\n",
      "a/h1": "linked\n",
      "b/sub/x": "b-x\n",
      "b/sub/w": "b-w\n",
      "c/h3": "linked across\n",
      Dockerfile: [
        "FROM busybox",
        "COPY --chown=1000:1000 a b /etc/new/",
        "COPY a/sub /etc/",
        // h3 lands in /etc (through the overlay), its link h4 in a new directory (directly).
        "COPY c/ /etc/",
        "RUN cat /etc/new/sub/x /etc/new/sub/y /etc/new/sub/deep/z /etc/new/sub/w && " +
        "readlink /etc/new/sub/link && stat -c '%u:%g %h' /etc/new/sub/x /etc/new/h1 /etc/new/h2 && " +
        "ls /etc/new/sub | tr '\\n' ' ' && echo && cat /etc/x && grep -c root /etc/passwd > /passwd-count",
        "",
      ].join("\n"),
    });
    try {
      await Deno.symlink("x", join(ctx, "a/sub/link"));
      await Deno.link(join(ctx, "a/h1"), join(ctx, "a/h2"));
      await Deno.mkdir(join(ctx, "c/newsub"));
      await Deno.link(join(ctx, "c/h3"), join(ctx, "c/newsub/h4"));
      const built = await tsbox(["build", "--progress", "plain", "-t", "t-copyupper:1", ctx], {
        root,
      });
      assertEquals(built.code, 0, built.stderr);
      const out = await tsbox([
        "run",
        "--rm",
        "t-copyupper:1",
        "sh",
        "-c",
        "cat /etc/new/sub/x /etc/new/sub/y /etc/new/sub/deep/z /etc/new/sub/w; " +
        "readlink /etc/new/sub/link; stat -c '%u:%g %h %a' /etc/new/sub/x /etc/new/sub/deep /etc/new/h1 /etc/new/h2; " +
        "ls /etc/new/sub | tr '\\n' ' '; echo; cat /etc/x /passwd-count; " +
        "[ $(stat -c %i /etc/new/h1) = $(stat -c %i /etc/new/h2) ] && echo same-inode; " +
        "[ $(stat -c %i /etc/h3) = $(stat -c %i /etc/newsub/h4) ] && cat /etc/newsub/h4",
      ], { root });
      assertEquals(out.code, 0, out.stderr);
      assertEquals(
        out.stdout,
        [
          "b-x", // the second source's x over the first's
          "a-y",
          "a-z",
          "b-w",
          "x",
          "1000:1000 1 644",
          "1000:1000 2 755", // a directory: itself and its entry
          "1000:1000 2 644",
          "1000:1000 2 644",
          "deep link w x y ",
          "a-x",
          "1",
          "same-inode",
          "linked across",
          "",
        ].join("\n"),
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await tsbox(["rmi", "t-copyupper:1"], { root });
    }
  },
);
