/**
 * The create body's decoding where compose and the docker client differ from the CLI's flags:
 * the network a container joins with its aliases and address, the anonymous volumes among
 * Config.Volumes, DNS and extra hosts, and the requests dockerd 1.41 refuses.
 */
import { parseLink } from "./links.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { HttpError } from "./http.ts";
import { createRequest } from "./create_body.ts";

Deno.test("create body: NetworkMode and its EndpointsConfig give --network, aliases, --ip", () => {
  const r = createRequest({
    Image: "busybox",
    HostConfig: { NetworkMode: "proj_default" },
    NetworkingConfig: {
      EndpointsConfig: {
        proj_default: { Aliases: ["web", "www"], IPAMConfig: { IPv4Address: "10.1.2.3" } },
      },
    },
  });
  assertEquals(
    [r.flags.network, r.flags.networkAlias, r.flags.ip],
    ["proj_default", ["web", "www"], "10.1.2.3"],
  );
});

Deno.test("create body: the default mode is the bridge, as the CLI's; bridge's endpoint is empty", () => {
  const r = createRequest({
    Image: "busybox",
    HostConfig: { NetworkMode: "default" },
    NetworkingConfig: { EndpointsConfig: { bridge: {} } },
  });
  assertEquals([r.flags.network, r.flags.networkAlias, r.flags.ip], [
    "default",
    undefined,
    undefined,
  ]);
  assertEquals(createRequest({ Image: "busybox" }).flags.network, "default");
});

Deno.test("create body: more than one network, or aliases for another network: 400", () => {
  const cases: unknown[] = [
    { Image: "b", NetworkingConfig: { EndpointsConfig: { a: {}, b: {} } } },
    {
      Image: "b",
      HostConfig: { NetworkMode: "a" },
      NetworkingConfig: { EndpointsConfig: { b: { Aliases: ["x"] } } },
    },
    { Image: "b", NetworkingConfig: { EndpointsConfig: { a: { Aliases: "x" } } } },
  ];
  for (const body of cases) {
    const err = assertThrows(() => createRequest(body), HttpError);
    assertEquals(err.status, 400, JSON.stringify(body));
  }
});

Deno.test("create body: Config.Volumes a bind or mount covers are no anonymous volumes", () => {
  const r = createRequest({
    Image: "busybox",
    Volumes: { "/data": {}, "/cache": {}, "/anon": {} },
    HostConfig: {
      Binds: ["proj_data:/data:rw"],
      Mounts: [{ Type: "volume", Source: "proj_cache", Target: "/cache" }],
    },
  });
  assertEquals(r.flags.volume, ["proj_data:/data:rw", "/anon"]);
  assertEquals(r.flags.mount, ["type=volume,target=/cache,source=proj_cache"]);
});

Deno.test("create body: Dns, DnsSearch, DnsOptions, ExtraHosts (empty lists give nothing)", () => {
  const r = createRequest({
    Image: "busybox",
    HostConfig: {
      Dns: ["10.0.0.53"],
      DnsSearch: ["example.test"],
      DnsOptions: [],
      ExtraHosts: ["db:10.0.0.5"],
    },
  });
  assertEquals(
    [r.flags.dns, r.flags.dnsSearch, r.flags.dnsOption, r.flags.addHost],
    [["10.0.0.53"], ["example.test"], undefined, ["db:10.0.0.5"]],
  );
});

Deno.test("create body: the resource fields become the CLI's flags; docker's zeros are not given", () => {
  const r = createRequest({
    Image: "busybox",
    HostConfig: {
      CgroupParent: "/jobs",
      CpusetCpus: "0",
      CpusetMems: "",
      CpuQuota: 50000,
      CpuPeriod: 100000,
      CpuRealtimeRuntime: 0,
      MemoryReservation: 32 << 20,
      KernelMemory: 0,
      OomKillDisable: true,
      OomScoreAdj: 300,
      BlkioWeight: 0,
      BlkioWeightDevice: [],
      BlkioDeviceReadBps: [{ Path: "/dev/null", Rate: 1048576 }],
      BlkioDeviceWriteIOps: [],
      DeviceCgroupRules: ["c 1:3 rw"],
      IpcMode: "",
      CgroupnsMode: "host",
    },
  });
  const f = r.flags;
  assertEquals(
    [f.cgroupParent, f.cpusetCpus, f.cpusetMems, f.cpuQuota, f.cpuPeriod, f.cpuRtRuntime],
    ["/jobs", "0", undefined, "50000", "100000", undefined],
  );
  assertEquals(
    [f.memoryReservation, f.kernelMemory, f.oomKillDisable, f.oomScoreAdj, f.blkioWeight],
    [String(32 << 20), undefined, true, "300", undefined],
  );
  assertEquals([f.deviceReadBps, f.deviceWriteIops, f.deviceCgroupRule], [
    ["/dev/null:1048576"],
    undefined,
    ["c 1:3 rw"],
  ]);
  assertEquals([f.ipc, f.cgroupns], [undefined, "host"]);
});

Deno.test("create body: wrongly typed resource fields are 400", () => {
  const cases: unknown[] = [
    { CpuQuota: "1000" },
    { CpusetCpus: 0 },
    { OomKillDisable: "yes" },
    { BlkioDeviceReadBps: { Path: "/dev/sda" } },
    { BlkioDeviceReadBps: [{ Path: "/dev/sda", Rate: "1m" }] },
    { DeviceCgroupRules: "c 1:3 rw" },
    { BlkioWeightDevice: [{ Path: "/dev/sda", Weight: "100" }] },
    { BlkioWeightDevice: { Path: "/dev/sda", Weight: 100 } },
    { MemorySwappiness: "10" },
    { Links: "db:database" },
  ];
  for (const host of cases) {
    const err = assertThrows(() => createRequest({ Image: "b", HostConfig: host }), HttpError);
    assertEquals(err.status, 400, JSON.stringify(host));
  }
});

Deno.test("create body: weight devices, swappiness (-1 is unset) and links of both places", () => {
  const r = createRequest({
    Image: "b",
    HostConfig: {
      BlkioWeightDevice: [{ Path: "/dev/vda", Weight: 300 }],
      MemorySwappiness: 17,
      Links: ["/db:/web/database", "cache"],
      NetworkMode: "proj",
    },
    NetworkingConfig: { EndpointsConfig: { proj: { Links: ["cache", "q:queue"] } } },
  });
  assertEquals([r.flags.blkioWeightDevice, r.flags.memorySwappiness], [["/dev/vda:300"], "17"]);
  assertEquals(r.links, ["/db:/web/database", "cache", "q:queue"]);
  const unset = createRequest({ Image: "b", HostConfig: { MemorySwappiness: -1 } });
  assertEquals([unset.flags.memorySwappiness, unset.flags.blkioWeightDevice], [
    undefined,
    undefined,
  ]);
  assertEquals(unset.links, []);
});

Deno.test("links: NAME[:ALIAS] and docker's /name:/new/alias form", () => {
  assertEquals(parseLink("db"), { name: "db", alias: "db" });
  assertEquals(parseLink("db:database"), { name: "db", alias: "database" });
  assertEquals(parseLink("/db:/web/database"), { name: "db", alias: "database" });
  for (const bad of ["", ":x", "db:", "a/b:c", "db:a b"]) {
    assertThrows(() => parseLink(bad), HttpError);
  }
});
