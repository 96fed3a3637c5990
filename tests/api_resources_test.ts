/**
 * The Engine API's resource fields and hostile archives with the docker client at tsbox's
 * socket (root, cgroup v1 here): `run --cgroup-parent --cpuset-cpus --memory-reservation ...`
 * reaches the same create options as the CLI's flags (the container's cgroup files, what it
 * sees in /proc, inspect's HostConfig), `update` of those limits finds the cgroup below the
 * parent, and `cp -` of a tar whose entry goes through the archive's own symlink to a host
 * directory is docker's 400 and writes nothing there.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { ok, rootTest, setup } from "./api_helpers.ts";
import { hostLayout } from "../src/runtime/cgroups.ts";
import { cgroupPaths, removeParentCgroups } from "./cgroups.ts";

const layout = hostLayout();

rootTest(
  "api resources: run's cgroup parent, cpuset, quota, reservation, oom, ulimit reach the cgroup; update too",
  async () => {
    const t = await setup();
    const top = `/t-api-cgp-${Deno.pid}`;
    const parent = `${top}/jobs`;
    const name = "t-api-res";
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(t.d(
        "run",
        "-d",
        "--name",
        name,
        "--cgroupns",
        "host",
        "--cgroup-parent",
        parent,
        "--cpuset-cpus",
        "0",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--oom-score-adj",
        "300",
        "--pids-limit",
        "50",
        "--ulimit",
        "nofile=1000:2000",
        "--device-cgroup-rule",
        "c 1:3 rw",
        ref,
        "sleep",
        "600",
      ));
      const id = (await ok(t.d("inspect", "-f", "{{.Id}}", name))).trim();
      const fmt = [
        "{{.HostConfig.CgroupParent}}",
        "{{.HostConfig.CpusetCpus}}",
        "{{.HostConfig.MemoryReservation}}",
        "{{.HostConfig.CpuQuota}}",
        "{{.HostConfig.CpuPeriod}}",
        "{{.HostConfig.OomScoreAdj}}",
        "{{.HostConfig.PidsLimit}}",
        "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}}",
        "{{.HostConfig.DeviceCgroupRules}}",
      ].join(" ");
      assertEquals(
        (await ok(t.d("inspect", "-f", fmt, name))).trim(),
        `${parent} 0 ${32 << 20} 50000 100000 300 50 nofile=1000:2000 [c 1:3 rw]`,
      );
      // What the container's processes see: its cgroup below the parent (a host cgroup
      // namespace shows the full path), its CPUs, PID 1's OOM score, its file limit.
      const inside = await ok(t.d(
        "exec",
        name,
        "sh",
        "-c",
        "cat /proc/self/cgroup; grep ^Cpus_allowed_list: /proc/self/status; " +
          "cat /proc/1/oom_score_adj; ulimit -n",
      ));
      const paths = cgroupPaths(inside.split("\n").filter((l) => /^\d+:/.test(l)).join("\n"));
      for (const c of ["memory", "cpu", "pids", "cpuset"]) {
        if (layout.v1.has(c)) assertEquals(paths.get(c), `${parent}/${id}`, c);
      }
      assertStringIncludes(inside, "Cpus_allowed_list:\t0\n");
      assertStringIncludes(inside, "\n300\n1000\n");
      // What the host's cgroup files say, below the parent.
      const file = (controller: string, f: string) =>
        Deno.readTextFileSync(`${layout.v1.get(controller)}${parent}/${id}/${f}`).trim();
      assertEquals(file("cpuset", "cpuset.cpus"), "0");
      assertEquals(file("memory", "memory.soft_limit_in_bytes"), String(32 << 20));
      assertEquals(file("cpu", "cpu.cfs_quota_us"), "50000");
      assertEquals(file("pids", "pids.max"), "50");
      assertStringIncludes(file("devices", "devices.list"), "c 1:3 rw");

      // update (POST /containers/{id}/update) changes them in the cgroup under the parent.
      await ok(t.d(
        "update",
        "--cpu-quota",
        "20000",
        "--memory-reservation",
        "16m",
        "--pids-limit",
        "40",
        name,
      ));
      assertEquals(file("cpu", "cpu.cfs_quota_us"), "20000");
      assertEquals(file("memory", "memory.soft_limit_in_bytes"), String(16 << 20));
      assertEquals(file("pids", "pids.max"), "40");
      assertEquals(
        (await ok(t.d("inspect", "-f", "{{.HostConfig.CpuQuota}} {{.HostConfig.PidsLimit}}", name)))
          .trim(),
        "20000 40",
      );

      const rt = await t.d("update", "--cpu-rt-runtime", "1000", name);
      assertEquals(rt.code, 1, rt.stderr);
      assertStringIncludes(rt.stderr, "--cpu-rt-runtime is not supported by tsbox");

      // Refused as the CLI refuses them: docker's 400 with the CLI's message, no container.
      const bad = await t.d("run", "--rm", "--cpuset-cpus", "1-0", ref, "true");
      assertEquals(bad.code, 125, bad.stderr);
      assertStringIncludes(bad.stderr, "Invalid value 1-0 for cpuset cpus");
      const escape = await t.d("run", "--rm", "--cgroup-parent", "../escape", ref, "true");
      assertEquals(escape.code, 125, escape.stderr);
      assertStringIncludes(escape.stderr, "../escape");
      assertEquals((await ok(t.d("ps", "-aq"))).trim().split("\n").length, 1);

      await ok(t.d("rm", "-f", name));
      // The container's cgroup goes; the parent is the user's and stays.
      assertOk(Deno.statSync(`${layout.v1.get("memory")}${parent}`).isDirectory);
      assertEquals(
        [...Deno.readDirSync(`${layout.v1.get("memory")}${parent}`)].some((e) => e.name === id),
        false,
      );
    } finally {
      await t.d("rm", "-f", name);
      await t.cleanup();
      removeParentCgroups(top);
    }
  },
);

/** A ustar archive (python's tarfile): `a` -> `target`, then the file `a/file`. */
async function symlinkTar(target: string): Promise<Uint8Array> {
  const script = [
    "import io, sys, tarfile",
    "buf = io.BytesIO()",
    "t = tarfile.open(fileobj=buf, mode='w', format=tarfile.USTAR_FORMAT)",
    "l = tarfile.TarInfo('a'); l.type = tarfile.SYMTYPE; l.linkname = sys.argv[1]",
    "t.addfile(l)",
    "data = b'written through the symlink\\n'",
    "f = tarfile.TarInfo('a/file'); f.size = len(data)",
    "t.addfile(f, io.BytesIO(data))",
    "t.close()",
    "sys.stdout.buffer.write(buf.getvalue())",
  ].join("\n");
  const out = await new Deno.Command("python3", { args: ["-c", script, target] }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

rootTest(
  "api archive: an entry through the archive's own symlink to a host directory is refused",
  async () => {
    const t = await setup();
    const host = await Deno.makeTempDir({ prefix: "tsbox-api-cp-target-" });
    const name = "t-api-cpsym";
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(t.d("run", "-d", "--name", name, ref, "sleep", "600"));
      for (const target of [host, `../../../../../../../..${host}`]) {
        const tar = await symlinkTar(target);
        // ASCII only, so the client's stdin gets the very bytes.
        assertOk(tar.every((b) => b < 0x80));
        const text = new TextDecoder().decode(tar);

        // The docker client: `docker cp - NAME:DIR` sends the tar as it is.
        const r = await t.withInput(text, "cp", "-", `${name}:/tmp`);
        assertEquals(r.code, 1, r.stdout + r.stderr);
        assertStringIncludes(r.stderr, "Error response from daemon");
        assertStringIncludes(r.stderr, "goes through the symlink a");

        // Raw HTTP: docker's status and error JSON.
        await Deno.writeFile(`${host}/../${name}.tar`, tar);
        const put = await new Deno.Command("curl", {
          args: [
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            t.socket,
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/x-tar",
            "-T",
            `${host}/../${name}.tar`,
            `http://x/v1.41/containers/${name}/archive?path=/tmp`,
          ],
        }).output();
        await Deno.remove(`${host}/../${name}.tar`);
        const answer = new TextDecoder().decode(put.stdout);
        const cut = answer.lastIndexOf("\n");
        const [body, status] = [answer.slice(0, cut), answer.slice(cut + 1)];
        assertEquals(status, "400", body);
        const message = (JSON.parse(body) as { message: string }).message;
        assertStringIncludes(message, "a/file");
        assertStringIncludes(message, "goes through the symlink a");

        assertEquals([...Deno.readDirSync(host)], [], "written into the host directory");
      }
      // The container still works and its /tmp has nothing of the refused archives.
      assertEquals(
        await ok(t.d("exec", name, "sh", "-c", "ls -A /tmp; echo end")),
        "end\n",
      );
      await ok(t.d("rm", "-f", name));
    } finally {
      await t.d("rm", "-f", name);
      await t.cleanup();
      await Deno.remove(host, { recursive: true }).catch(() => {});
    }
  },
);
