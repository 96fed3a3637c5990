/**
 * tsbox's OCI runtime as a Kubernetes runtime handler (root): containerd 1.6's CRI plugin, in a
 * containerd of the test's own (tests/containerd.ts), with a runtime `tsbox` whose runc shim
 * runs tsbox's runtime (`BinaryName`). Driven the way a kubelet does, over the CRI's gRPC
 * (tests/cri.ts; Debian 12 has no crictl): a pod sandbox (a pause image of the test registry)
 * and a busybox container in it that joins the sandbox's IPC and PID namespaces by path
 * (`/proc/PID/ns/...` in its config.json), ExecSync into it, then stop and remove both, with
 * nothing left behind.
 *
 * The pod has a network namespace of its own, which the container joins too: containerd wants
 * the pod's `eth0` to have an address, so the test's CNI network moves one end of a veth pair the
 * test made into the pod (Debian's `host-device` plugin) with a documentation address (`static`
 * IPAM); no host route, no forwarding, no packet leaves.
 *
 * `TSBOX_TEST_RUNC=/usr/sbin/runc` runs the same test against runc, to check the test itself.
 */
import { join } from "node:path";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { argvOnceExeced, nothingLeft, settledLeftovers, startContainerd } from "./containerd.ts";
import {
  ContainerState,
  CriClient,
  type Field,
  type Message,
  NamespaceMode,
  podSandboxConfig,
} from "./cri.ts";
import { fixtureRegistry, pushLayout, type TestRegistry } from "./fixtures/images.ts";
import { buildLayout } from "./fixtures/oci.ts";
import { runcBinary } from "./runc_bin.ts";

const isRoot = Deno.uid() === 0;
const HANDLER = "tsbox";
/** The pod's address (TEST-NET-1: on no network of ours, and it sends nothing). */
const POD_ADDRESS = "192.0.2.2/24";

async function ip(args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** The CNI network of the pod: the veth end `device` becomes its eth0 with POD_ADDRESS. */
function podNetwork(device: string, dir: string) {
  return {
    cniVersion: "0.4.0",
    name: "tsbox-cri-test",
    plugins: [{
      type: "host-device",
      device,
      ipam: { type: "static", addresses: [{ address: POD_ADDRESS }], dataDir: dir },
    }],
  };
}

/** A pause image: busybox's `sleep` holding the pod's namespaces, pushed to the registry. */
async function pushPauseImage(registry: TestRegistry): Promise<string> {
  const layout = await buildLayout("cri-pause", {
    latest: {
      architecture: "amd64",
      os: "linux",
      layers: [{
        createdBy: "tsbox CRI test: busybox-static's sleep as the pod's pause process",
        entries: [
          { path: "bin", type: "dir" },
          { path: "bin/busybox", type: "file", src: "/bin/busybox", mode: 0o755 },
          { path: "bin/sleep", type: "symlink", target: "busybox" },
        ],
      }],
      config: { Entrypoint: ["/bin/sleep", "2147483647"] },
    },
  });
  const ref = `${registry.host}/cri/pause:latest`;
  await pushLayout({ image: `${layout.dir}:latest` }, ref, { format: "oci" });
  return ref;
}

/** The `pid` in the verbose `info` of a sandbox's or container's status. */
function verbosePid(status: Message): number {
  const info = JSON.parse(status.map(2).info ?? "{}");
  assertOk(info.pid > 0, `no pid in ${JSON.stringify(info)}`);
  return info.pid;
}

function nsOf(pid: number, ns: string): string {
  return Deno.readLinkSync(`/proc/${pid}/ns/${ns}`);
}

Deno.test({
  name: "containerd's CRI runs a pod with a container through tsbox's runtime as its handler",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fx = await fixtureRegistry();
    const pause = await pushPauseImage(fx.registry);
    const bin = await Deno.makeTempDir({ prefix: "tsbox-cri-bin-" });
    const runtime = await runcBinary(bin);
    // A veth pair of the test's own: one end goes into the pod, the other stays down.
    const device = `tcri${Deno.pid % 100000}`;
    await ip(["link", "add", device, "type", "veth", "peer", "name", `${device}p`]);
    const h = await startContainerd({
      cri: {
        sandboxImage: pause,
        plainHttpRegistries: [fx.registry.host],
        runtimes: { [HANDLER]: { binary: runtime } },
        cniConfList: podNetwork(device, bin),
      },
    }).catch(async (err) => {
      await ip(["link", "del", `${device}p`]).catch(() => {});
      throw err;
    });
    const cri = new CriClient(h.address);
    const rt = (method: string, req: readonly Field[]) => cri.call("RuntimeService", method, req);
    try {
      const version = await rt("Version", [[1, "string", "v1"]]);
      assertEquals(version.string(2), "containerd");
      assertEquals(version.string(4), "v1");

      const pulled = await cri.call("ImageService", "PullImage", [
        [1, "message", [[1, "string", fx.refs.busybox]]],
      ]);
      assertOk(pulled.string(1).startsWith("sha256:"), pulled.string(1));

      const podConfig = podSandboxConfig({
        name: "t-pod",
        uid: "t-pod-uid",
        namespace: "default",
        logDirectory: join(h.dir, "pods"),
        cgroupParent: h.cgroupParent,
        hostname: "t-pod",
        network: NamespaceMode.POD,
      });
      const pod = (await rt("RunPodSandbox", [
        [1, "message", podConfig],
        [2, "string", HANDLER],
      ])).string(1);
      assertOk(pod, "RunPodSandbox gave an id");
      const podStatus = await rt("PodSandboxStatus", [[1, "string", pod], [2, "varint", 1]]);
      assertEquals(podStatus.message(1).int(3), 0, "SANDBOX_READY");
      assertEquals(podStatus.message(1).string(9), HANDLER);
      const podPid = verbosePid(podStatus);
      assertEquals(
        await argvOnceExeced(podPid, ["/bin/sleep", "2147483647"]),
        ["/bin/sleep", "2147483647"],
      );

      const created = await rt("CreateContainer", [
        [1, "string", pod],
        [2, "message", [
          [1, "message", [[1, "string", "t-box"]]],
          [2, "message", [[1, "string", fx.refs.busybox]]],
          [3, "string", "sleep"],
          [4, "string", "1000"],
          [11, "string", "t-box.log"],
        ]],
        [3, "message", podConfig],
      ]);
      const box = created.string(1);
      assertOk(box, "CreateContainer gave an id");
      await rt("StartContainer", [[1, "string", box]]);
      const boxStatus = await rt("ContainerStatus", [[1, "string", box], [2, "varint", 1]]);
      assertEquals(boxStatus.message(1).int(3), ContainerState.RUNNING);
      const boxPid = verbosePid(boxStatus);

      // Both tasks went through the handler's runtime: the shim was given it as BinaryName, and
      // the runtime's state dir holds both while they run.
      for (const id of [pod, box]) {
        const options = join(h.dir, "state/io.containerd.runtime.v2.task/k8s.io", id);
        assertStringIncludes(await Deno.readTextFile(join(options, "options.json")), runtime);
      }
      const during = h.leftovers();
      const state = during.runtimeState;
      assertOk(state.includes(`k8s.io/${pod}`) && state.includes(`k8s.io/${box}`), `${state}`);
      // What the end checks for is there now (so that its absence then means something).
      for (const [what, found] of Object.entries(during)) {
        assertOk(found.length > 0, `no ${what} seen while the pod runs: ${JSON.stringify(during)}`);
      }

      // The container joined the sandbox's namespaces (by path), not made its own.
      for (const ns of ["net", "ipc", "uts", "pid"]) {
        assertEquals(nsOf(boxPid, ns), nsOf(podPid, ns), `${ns} namespace shared with the pod`);
        assertOk(nsOf(boxPid, ns) !== nsOf(Deno.pid, ns), `${ns} is not the host's`);
      }
      assertOk(nsOf(boxPid, "mnt") !== nsOf(podPid, "mnt"), "its own mount namespace");

      // ExecSync: output and exit code; the pod's pause process is PID 1 of the shared PID ns.
      const exec = await rt("ExecSync", [
        [1, "string", box],
        [2, "string", "sh"],
        [2, "string", "-c"],
        [
          2,
          "string",
          "tr '\\0' ' ' </proc/1/cmdline; echo; hostname; ip -o -4 addr show eth0 | " +
          "awk '{print $4}'; exit 3",
        ],
        [3, "varint", 30],
      ]);
      assertEquals(exec.int(3), 3, new TextDecoder().decode(exec.bytes(2)));
      assertEquals(
        new TextDecoder().decode(exec.bytes(1)),
        `/bin/sleep 2147483647 \nt-pod\n${POD_ADDRESS}\n`,
      );

      await rt("StopContainer", [[1, "string", box], [2, "varint", 10]]);
      const stopped = await rt("ContainerStatus", [[1, "string", box]]);
      assertEquals(stopped.message(1).int(3), ContainerState.EXITED);
      await rt("RemoveContainer", [[1, "string", box]]);
      await rt("StopPodSandbox", [[1, "string", pod]]);
      await rt("RemovePodSandbox", [[1, "string", pod]]);

      const after = await settledLeftovers(h);
      assertOk(nothingLeft(after), `left behind: ${JSON.stringify(after)}`);
      // The pod's own dirs are gone now, so look for its id in libcni's cache by name.
      const cached = await Array.fromAsync(Deno.readDir("/var/lib/cni/results"))
        .catch(() => []);
      assertEquals(cached.map((e) => e.name).filter((n) => n.includes(pod)), []);
    } finally {
      cri.close();
      await h.stop();
      // The pod's end came back to the host on the CNI DEL (or went with the pod's namespace).
      await ip(["link", "del", `${device}p`]).catch(() => {});
      await Deno.remove(bin, { recursive: true });
    }
  },
});
