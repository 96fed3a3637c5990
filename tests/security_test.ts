/**
 * Confinement against the real kernel (root): masks, read-only /proc paths, seccomp, capability
 * flags, no_new_privs, devices, rlimits, workdir and volume-target escapes, and user namespace
 * remapping. Each check reads what the kernel shows from inside (or, for ids, from the host).
 */
import { join } from "node:path";
import { seedStore } from "./busybox_store.ts";
import {
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertOk,
  assertStringIncludes,
} from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { purgeRootSync } from "./cleanup.ts";

const isRoot = Deno.uid() === 0;

let shared: Promise<string> | undefined;
function store(): Promise<string> {
  shared ??= (async () => {
    const { root } = await tempRoot();
    await seedStore(root);
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    return root;
  })();
  return shared;
}

async function sh(script: string, flags: string[] = []) {
  return await tsbox(["run", "--rm", ...flags, "busybox", "sh", "-c", script], {
    root: await store(),
  });
}

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

rootTest("default: masked /proc files read empty, /sys/firmware is empty", async () => {
  const masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"]
    .filter(exists);
  assertOk(masked.length > 0, "this kernel has at least one of the masked files");
  const r = await sh(
    `for f in /proc/kcore ${masked.join(" ")}; do echo "$f $(cat $f 2>/dev/null | wc -c)"; done;` +
      ` echo "fw $(ls -A /sys/firmware | wc -l)"`,
  );
  assertEquals(r.code, 0, r.stderr);
  for (const f of ["/proc/kcore", ...masked]) assertStringIncludes(r.stdout, `${f} 0\n`);
  assertStringIncludes(r.stdout, "fw 0\n");
  assertOk(exists("/sys/firmware") && [...Deno.readDirSync("/sys/firmware")].length > 0);
});

rootTest(
  "default: /proc/sys and sysrq-trigger are not writable; mount and unshare fail",
  async () => {
    const r = await sh(
      "echo x > /proc/sysrq-trigger && echo sysrq-written;" +
        " echo h > /proc/sys/kernel/hostname && echo hostname-written;" +
        " mkdir -p /mnt; mount -t tmpfs none /mnt && echo mounted;" +
        " unshare -U true && echo unshared; grep Seccomp: /proc/self/status",
    );
    assertEquals(r.code, 0, r.stderr);
    for (const bad of ["sysrq-written", "hostname-written", "mounted", "unshared"]) {
      assertEquals(r.stdout.includes(bad), false, `${bad}: ${r.stdout}`);
    }
    assertMatch(r.stdout, /Seccomp:\s+2/);
    assertMatch(r.stderr, /unshare.*Operation not permitted/);
  },
);

rootTest("--privileged lifts masks, seccomp and read-only /sys and /proc/sys", async () => {
  const r = await sh(
    "echo h > /proc/sys/kernel/hostname && echo hostname-written;" +
      " mkdir -p /mnt; mount -t tmpfs none /mnt && echo mounted;" +
      ' unshare -U true && echo unshared; echo "fw $(ls -A /sys/firmware | wc -l)";' +
      " grep -E 'Seccomp:|CapEff' /proc/self/status; grep ' /sys ' /proc/mounts",
    ["--privileged"],
  );
  assertEquals(r.code, 0, r.stderr);
  for (const ok of ["hostname-written", "mounted", "unshared"]) assertStringIncludes(r.stdout, ok);
  assertNotEquals(/fw (\d+)/.exec(r.stdout)?.[1], "0");
  assertMatch(r.stdout, /Seccomp:\s+0/);
  assertMatch(r.stdout, /sysfs \/sys sysfs rw/);
  const own = /CapBnd:\s*([0-9a-f]+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1];
  assertStringIncludes(r.stdout, `CapEff:\t${own}`);
});

rootTest(
  "--cap-drop ALL leaves CapEff 0; --cap-add is case-insensitive, with or without CAP_",
  async () => {
    const r = await sh("grep CapEff /proc/self/status", ["--cap-drop", "ALL"]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "CapEff:\t0000000000000000");
    const added = await sh("grep CapEff /proc/self/status", [
      "--cap-drop",
      "all",
      "--cap-add",
      "net_admin",
      "--cap-add",
      "CAP_SYS_TIME",
    ]);
    assertEquals(added.code, 0, added.stderr);
    const mask = (1 << 12) | (1 << 25);
    assertStringIncludes(added.stdout, `CapEff:\t${mask.toString(16).padStart(16, "0")}`);
    const bad = await sh("true", ["--cap-add", "NOT_A_CAP"]);
    assertEquals(bad.code, 125);
    assertStringIncludes(bad.stderr, "unknown capability");
  },
);

rootTest("--security-opt no-new-privileges shows NoNewPrivs 1 (0 by default)", async () => {
  const on = await sh("grep NoNewPrivs /proc/self/status", [
    "--security-opt",
    "no-new-privileges",
  ]);
  assertEquals(on.code, 0, on.stderr);
  assertMatch(on.stdout, /NoNewPrivs:\s+1/);
  const off = await sh("grep NoNewPrivs /proc/self/status");
  assertMatch(off.stdout, /NoNewPrivs:\s+0/);
});

rootTest("seccomp=unconfined and seccomp=profile.json (errnoRet from the profile)", async () => {
  const un = await sh("grep Seccomp: /proc/self/status", ["--security-opt", "seccomp=unconfined"]);
  assertMatch(un.stdout, /Seccomp:\s+0/);
  const dir = await Deno.makeTempDir();
  try {
    const profile = join(dir, "p.json");
    await Deno.writeTextFile(
      profile,
      JSON.stringify({
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
      }),
    );
    const r = await sh("mkdir /tmp/x; echo rc=$?", ["--security-opt", `seccomp=${profile}`]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "rc=1");
    assertStringIncludes(r.stderr, "Permission denied");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest("devices: a node made with mknod is unusable; --device adds one", async () => {
  const r = await sh(
    "mknod /tmp/kmsg c 1 11 && echo made; echo hi > /tmp/kmsg && echo wrote; true",
  );
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "made");
  assertEquals(r.stdout.includes("wrote"), false, "the device cgroup denies c 1:11");
  assertStringIncludes(r.stderr, "Operation not permitted");
  const ok = await sh("ls -l /dev/mykmsg && exec 3>/dev/mykmsg && echo opened", [
    "--device",
    "/dev/kmsg:/dev/mykmsg:w",
  ]);
  assertEquals(ok.code, 0, ok.stderr);
  assertMatch(ok.stdout, /^c.* 1,\s+11 /m);
  assertStringIncludes(ok.stdout, "opened");
});

rootTest(
  "RLIMIT_NOFILE is docker's, clamped to tsbox's hard limit; --ulimit sets others",
  async () => {
    const hard = (await new Deno.Command("sh", { args: ["-c", "ulimit -Hn"] }).output()).stdout;
    const want = Math.min(1048576, Number(new TextDecoder().decode(hard).trim()));
    const r = await sh("ulimit -n; ulimit -Hn; ulimit -Hu", ["--ulimit", "nproc=300:400"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim().split("\n"), [String(want), String(want), "400"]);
  },
);

rootTest("-w /proc/self/fd/5 is refused before start", async () => {
  const r = await sh("pwd", ["-w", "/proc/self/fd/5"]);
  assertEquals(r.code, 125);
  assertStringIncludes(r.stderr, "outside the container's root filesystem");
});

rootTest(
  "a volume target through an image symlink to /tmp creates nothing in the host's /tmp",
  async () => {
    const { root, cleanup } = await tempRoot();
    const src = await Deno.makeTempDir();
    const marker = `tsbox-escape-${crypto.randomUUID()}`;
    try {
      const { layerDir } = await seedStore(root);
      // The image's /data is an absolute symlink to /tmp: the container's /tmp, not the host's.
      Deno.symlinkSync("/tmp", join(layerDir, "data"));
      await Deno.writeTextFile(join(src, "hello"), "hi");
      const r = await tsbox(
        ["run", "--rm", "-v", `${src}:/data/${marker}`, "busybox", "cat", `/tmp/${marker}/hello`],
        { root },
      );
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "hi");
      assertEquals(exists(`/tmp/${marker}`), false, "nothing was created in the host's /tmp");
    } finally {
      await cleanup();
      await Deno.remove(src, { recursive: true });
    }
  },
);

async function inPrivateSubids(args: string[], root: string, script: string) {
  // --userns-remap=default appends to /etc/subuid and /etc/subgid: give it copies, bound over
  // the real files in a private mount namespace, so the host's files never change.
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["subuid", "subgid"]) {
      await Deno.writeTextFile(
        join(dir, f),
        exists(`/etc/${f}`) ? Deno.readTextFileSync(`/etc/${f}`) : "",
      );
    }
    const main = new URL("../main.ts", import.meta.url).pathname;
    const cmd = [
      `mount --bind ${dir}/subuid /etc/subuid && mount --bind ${dir}/subgid /etc/subgid &&`,
      `'${Deno.execPath()}' run -A --quiet '${main}' --root '${root}' ${args.join(" ")} &`,
      `pid=$!; ${script}; wait $pid`,
    ].join(" ");
    const out = await new Deno.Command("unshare", {
      args: ["-m", "--propagation", "private", "sh", "-c", cmd],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      subuid: Deno.readTextFileSync(join(dir, "subuid")),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

rootTest(
  "--userns-remap=default: root inside, the mapped uid outside, image owners kept",
  async () => {
    const before = exists("/etc/subuid") ? Deno.readTextFileSync("/etc/subuid") : undefined;
    const { root, cleanup } = await tempRoot();
    try {
      await seedStore(root);
      const r = await inPrivateSubids(
        [
          "--userns-remap=default",
          "run",
          "--name",
          "remapped",
          "busybox",
          "sh",
          "-c",
          // Lives until the host side has looked (a done file), at most two minutes.
          `'id -u; ls -ln /etc/passwd /bin/busybox; touch /tmp/made; i=0;` +
          ` while [ ! -e /tmp/done ] && [ $i -lt 6000 ]; do usleep 20000; i=$((i+1)); done'`,
        ],
        root,
        // While it runs: the host's view of the container's PID 1 (the sh), found through
        // tsbox itself rather than by name, since other containers may run meanwhile. Polled
        // (a minute at most) until PID 1 has made its file, then the container is let go.
        `end=$(($(date +%s) + 60)); pid1=;` +
          ` while [ "$(date +%s)" -lt "$end" ]; do` +
          ` pid1=$('${Deno.execPath()}' run -A --quiet '${
            new URL("../main.ts", import.meta.url).pathname
          }' --root '${root}' inspect remapped 2>/dev/null |` +
          ` grep -o '"Pid": [1-9][0-9]*' | grep -o '[0-9]*$');` +
          ` [ -n "$pid1" ] && [ -e "/proc/$pid1/root/tmp/made" ] && break; sleep 0.1; done;` +
          ` grep -E '^Uid' "/proc/$pid1/status"; touch "/proc/$pid1/root/tmp/done"`,
      );
      assertEquals(r.code, 0, r.stderr);
      const entry = /^tsbox:(\d+):65536$/m.exec(r.subuid);
      assertOk(entry, `a tsbox range was added to the copy: ${r.subuid}`);
      const base = Number(entry[1]);
      const lines = r.stdout.trim().split("\n");
      assertEquals(lines[0], "0", "id -u inside");
      assertMatch(r.stdout, /-rw-r--r--\s+1 0\s+0\s+.*\/etc\/passwd/);
      assertMatch(r.stdout, /-rwxr-xr-x\s+1 0\s+0\s+.*\/bin\/busybox/);
      assertMatch(r.stdout, new RegExp(`Uid:\\s+${base}\\s+${base}\\s+${base}\\s+${base}`));
      const made = (await Array.fromAsync(Deno.readDir(join(root, "containers"))))
        .map((e) => join(root, "containers", e.name, "upper", "tmp", "made")).find(exists);
      assertOk(made, "the file is in the container's upper dir");
      const st = Deno.statSync(made);
      assertEquals([st.uid, st.gid], [base, base]);
      const after = exists("/etc/subuid") ? Deno.readTextFileSync("/etc/subuid") : undefined;
      assertEquals(after, before, "the host's /etc/subuid is unchanged");
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "--userns-remap with --device SRC:DST: the host's node is bound under its new name",
  async () => {
    const { root, cleanup } = await tempRoot();
    try {
      await seedStore(root);
      const r = await inPrivateSubids(
        [
          "--userns-remap=default",
          "run",
          "--rm",
          "--device",
          "/dev/null:/dev/mynull",
          "busybox",
          "sh",
          "-c",
          `'echo gone > /dev/mynull && stat -c "%t:%T" /dev/mynull'`,
        ],
        root,
        "true",
      );
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), "1:3", "the node is the host's /dev/null (1:3)");
    } finally {
      await cleanup();
    }
  },
);
