/**
 * `/_ping`, `/version`, `/info`, and what dockerd outside swarm mode answers for the parts
 * tsbox does not serve (clients probe those and decide by the status code: design.md).
 *
 * @module
 */
import { infoData } from "../cli/info_actions.ts";
import { VERSION } from "../version.ts";
import type { ApiContext } from "./context.ts";
import { type ApiRequest, type ApiResponse, json } from "./http.ts";

/** The API version served (what Debian's docker 20.10 and docker-compose 1.29 negotiate). */
export const API_VERSION = "1.41";
/** The oldest API version accepted in a `/vX.Y/` prefix. */
export const MIN_API_VERSION = "1.24";

/** Go's name of the host architecture. */
function goArch(): string {
  return { x86_64: "amd64", aarch64: "arm64" }[Deno.build.arch] ?? Deno.build.arch;
}

/** `GET|HEAD /_ping`: `OK` with the headers clients negotiate by. */
export function ping(_ctx: ApiContext, req: ApiRequest): ApiResponse {
  return {
    status: 200,
    headers: {
      "Content-Type": "text/plain; charset=utf-8",
      "Cache-Control": "no-cache, no-store, must-revalidate",
      Pragma: "no-cache",
      "Docker-Experimental": "false",
      Ostype: "linux",
      "Builder-Version": "1",
    },
    body: req.method === "HEAD" ? "" : "OK",
  };
}

/** `GET /version`. */
export function version(): ApiResponse {
  const kernel = Deno.osRelease();
  return json(200, {
    Platform: { Name: "tsbox" },
    Components: [{
      Name: "Engine",
      Version: VERSION,
      Details: {
        ApiVersion: API_VERSION,
        MinAPIVersion: MIN_API_VERSION,
        Os: "linux",
        Arch: goArch(),
        KernelVersion: kernel,
      },
    }],
    Version: VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: "",
    GoVersion: `deno ${Deno.version.deno}`,
    Os: "linux",
    Arch: goArch(),
    KernelVersion: kernel,
    BuildTime: "",
  });
}

/** `GET /info`: `tsbox info`'s data (info_actions.ts) in docker's system.Info shape. */
export async function info(ctx: ApiContext): Promise<ApiResponse> {
  const data = await infoData(ctx.globals);
  return json(200, {
    ID: "",
    ...data,
    Architecture: goArch() === "amd64" ? "x86_64" : Deno.build.arch,
    Plugins: {
      Volume: ["local"],
      Network: ["host", "none"],
      Authorization: null,
      Log: ["json-file"],
    },
    MemoryLimit: true,
    SwapLimit: true,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    CPUShares: true,
    PidsLimit: true,
    IPv4Forwarding: false,
    Debug: ctx.globals.debug,
    LoggingDriver: "json-file",
    NEventsListener: 0,
    IndexServerAddress: "https://index.docker.io/v1/",
    RegistryConfig: {
      InsecureRegistryCIDRs: ["127.0.0.0/8"],
      IndexConfigs: {},
      Mirrors: [],
    },
    Labels: [],
    ExperimentalBuild: false,
    Runtimes: { tsbox: { path: "tsbox" } },
    DefaultRuntime: "tsbox",
    Swarm: {
      NodeID: "",
      NodeAddr: "",
      LocalNodeState: "inactive",
      ControlAvailable: false,
      Error: "",
      RemoteManagers: null,
    },
    LiveRestoreEnabled: true,
    Isolation: "",
    InitBinary: "catatonit",
    Warnings: [],
  });
}

/** Swarm, services, nodes, secrets, configs and tasks: dockerd's answer outside swarm mode. */
export function notSwarmManager(): ApiResponse {
  return json(503, {
    message:
      'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.',
  });
}

/** `GET /plugins`: none installed. */
export function plugins(): ApiResponse {
  return json(200, []);
}

/** `/plugins/{name}/...`: no such plugin. */
export function noPlugin(name: string): ApiResponse {
  return json(404, { message: `plugin "${name}" not found` });
}
