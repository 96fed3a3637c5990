/**
 * The `/networks` endpoints, over the code of `tsbox network create|ls|inspect|rm|prune|connect|
 * disconnect` (src/network, src/container/networking.ts). dockerd also lists its `host` and
 * `none` networks; tsbox has both as namespace modes, so they are listed (and inspected) the same
 * way, and refused for removal as docker refuses them.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { inspectNetwork } from "../cli/network_actions.ts";
import { globMatch, matchLabels, parseFilters } from "../cli/filters.ts";
import {
  createNetwork,
  DEFAULT_NETWORK,
  ensureDefaultNetwork,
  findNetwork,
  leasesOf,
  listNetworks,
  type NetworkRecord,
  PREDEFINED,
  removeNetwork,
  requireNetwork,
} from "../network/mod.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, HttpError, json } from "./http.ts";
import { filterValues, parseJsonBody, untilTimes } from "./params.ts";

type Json = Record<string, unknown>;

/** docker's `host` and `none` networks: namespace modes in tsbox, listed as dockerd lists them. */
const MODE_NETWORKS: Record<string, string> = { host: "host", none: "null" };

/** A stable id for a mode network (dockerd makes one per daemon; this one per store). */
function modeNetworkId(ctx: ApiContext, name: string): string {
  return createHash("sha256").update(`tsbox-network:${ctx.store.root}:${name}`).digest("hex");
}

/** The inspect object of the `host` or `none` network: the containers that run in that mode. */
function modeNetwork(ctx: ApiContext, name: string): Json {
  const containers: Json = {};
  const rows = ctx.store.db.all<{ id: string; name: string; config: string }>(
    "SELECT id, name, config FROM containers",
  );
  for (const r of rows) {
    const mode = (JSON.parse(r.config) as { network?: string }).network;
    if (mode !== name) continue;
    containers[r.id] = {
      Name: r.name,
      EndpointID: "",
      MacAddress: "",
      IPv4Address: "",
      IPv6Address: "",
    };
  }
  return {
    Name: name,
    Id: modeNetworkId(ctx, name),
    Created: "0001-01-01T00:00:00Z",
    Scope: "local",
    Driver: MODE_NETWORKS[name],
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: containers,
    Options: {},
    Labels: {},
  };
}

/**
 * A bridge network in docker's shape. `Options` are what the network was created with, as
 * dockerd shows them: none for a user network (compose compares them with its file's
 * `driver_opts` and wants to recreate a network whose options differ); the default bridge shows
 * its bridge's name as docker0's does.
 */
function bridgeNetwork(ctx: ApiContext, n: NetworkRecord): Json {
  const out = inspectNetwork(ctx.store, n);
  return n.name === DEFAULT_NETWORK ? out : { ...out, Options: {} };
}

/** Every network as docker lists them: tsbox's bridge networks, then `host` and `none`. */
function allNetworks(ctx: ApiContext): Json[] {
  return [
    ...listNetworks(ctx.store).map((n) => bridgeNetwork(ctx, n)),
    ...Object.keys(MODE_NETWORKS).map((m) => modeNetwork(ctx, m)),
  ];
}

/** The network `ref` names (name, id or id prefix), in docker's inspect shape; 404 otherwise. */
function inspectRef(ctx: ApiContext, ref: string): Json {
  if (ref === DEFAULT_NETWORK) ensureDefaultNetwork(ctx.store);
  const net = findNetwork(ctx.store, ref);
  if (net) return bridgeNetwork(ctx, net);
  for (const m of Object.keys(MODE_NETWORKS)) {
    const id = modeNetworkId(ctx, m);
    if (ref === m || (/^[0-9a-f]{1,64}$/.test(ref) && id.startsWith(ref))) {
      return modeNetwork(ctx, m);
    }
  }
  throw new HttpError(404, `network ${ref} not found`);
}

/** docker's network list filters: driver, id, label, name, scope, type, dangling. */
function networkFilter(raw: string | null): (n: Json) => boolean {
  const f = parseFilters(filterValues(raw), [
    "driver",
    "id",
    "label",
    "label!",
    "name",
    "scope",
    "type",
    "dangling",
  ]);
  const dangling = f.get("dangling");
  for (const t of f.get("type") ?? []) {
    if (t !== "custom" && t !== "builtin") throw badParameter(`invalid filter: 'type'='${t}'`);
  }
  return (n) => {
    const name = String(n.Name), id = String(n.Id);
    const builtin = name === DEFAULT_NETWORK || name in MODE_NETWORKS;
    const any = (key: string, test: (v: string) => boolean) => {
      const values = f.get(key);
      return !values || values.some(test);
    };
    return any("driver", (v) => v === n.Driver) &&
      any("id", (v) => id.startsWith(v)) &&
      // docker matches names as substrings; a glob is no part of it, but an exact name is.
      any("name", (v) => name.includes(v) || globMatch(v, name)) &&
      any("scope", (v) => v === "local") &&
      any("type", (v) => (v === "builtin") === builtin) &&
      (!dangling || dangling.some((v) => {
        const unused = Object.keys(n.Containers as Json).length === 0 && !builtin;
        return (v === "true" || v === "1") === unused;
      })) &&
      matchLabels(f, n.Labels as Record<string, string>);
  };
}

/** `GET /networks?filters`. */
export function list(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const keep = networkFilter(req.query.get("filters"));
  return json(200, allNetworks(ctx).filter(keep));
}

/** `GET /networks/{id}?verbose&scope`. */
export function inspect(ctx: ApiContext, _req: ApiRequest, ref: string): ApiResponse {
  return json(200, inspectRef(ctx, ref));
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(b: Json, key: string): string | undefined {
  const v = b[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw badParameter(`${key}: expected a string`);
  return v;
}

/**
 * `POST /networks/create`: a bridge network with at most one IPv4 pool. 201 `{Id, Warning}`;
 * 409 for a name in use (docker 20.10's CheckDuplicate is always on here, as in docker 23+).
 */
export async function create(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const body = await parseJsonBody(req);
  if (!isObject(body)) throw badParameter("network config expected");
  const name = optString(body, "Name");
  if (!name) throw badParameter("network name is required");
  const driver = optString(body, "Driver") ?? "bridge";
  if (driver !== "bridge") {
    throw badParameter(`network driver "${driver}" is not supported by tsbox (only bridge)`);
  }
  if (body.EnableIPv6 !== undefined && typeof body.EnableIPv6 !== "boolean") {
    throw badParameter("EnableIPv6: expected a boolean");
  }
  if (body.Internal !== undefined && typeof body.Internal !== "boolean") {
    throw badParameter("Internal: expected a boolean");
  }
  const options = body.Options ?? {};
  if (!isObject(options)) throw badParameter("Options: expected an object");
  if (Object.keys(options).length > 0) {
    throw badParameter(
      `network driver options are not supported by tsbox (${Object.keys(options).join(", ")})`,
    );
  }
  const labels = body.Labels ?? {};
  if (!isObject(labels) || Object.values(labels).some((v) => typeof v !== "string")) {
    throw badParameter("Labels: expected an object of strings");
  }
  let subnet: string | undefined, gateway: string | undefined;
  let subnet6: string | undefined, gateway6: string | undefined;
  if (body.IPAM !== undefined && body.IPAM !== null) {
    if (!isObject(body.IPAM)) throw badParameter("IPAM: expected an object");
    const ipamDriver = optString(body.IPAM, "Driver");
    if (ipamDriver && ipamDriver !== "default") {
      throw badParameter(`IPAM driver "${ipamDriver}" is not supported (only default)`);
    }
    const configs = body.IPAM.Config ?? [];
    if (!Array.isArray(configs) || configs.some((c) => !isObject(c))) {
      throw badParameter("IPAM.Config: expected a list of objects");
    }
    // One IPv4 pool and one IPv6 pool at most, as `network create --subnet` takes them.
    for (const c of configs as Json[]) {
      const s = optString(c, "Subnet");
      const g = optString(c, "Gateway");
      if (optString(c, "IPRange") !== undefined) {
        throw badParameter("IPAM.Config.IPRange is not supported by tsbox");
      }
      const six = s !== undefined ? s.includes(":") : g?.includes(":") ?? false;
      if (
        six
          ? subnet6 !== undefined || gateway6 !== undefined
          : subnet !== undefined || gateway !== undefined
      ) {
        throw badParameter(
          `tsbox networks take one IPAM pool per address family (one IPv${six ? 6 : 4} subnet)`,
        );
      }
      if (six) [subnet6, gateway6] = [s, g];
      else [subnet, gateway] = [s, g];
    }
  }
  if (subnet6 !== undefined && body.EnableIPv6 !== true) {
    throw badParameter("an IPv6 IPAM pool needs EnableIPv6");
  }
  if (PREDEFINED.has(name)) {
    throw new HttpError(403, `${name} is a pre-defined network and cannot be created`);
  }
  if (findNetwork(ctx.store, name)?.name === name) {
    throw new HttpError(409, `network with name ${name} already exists`);
  }
  const net = createNetwork(ctx.store, {
    name,
    subnet,
    gateway,
    ...(body.EnableIPv6 === true ? { ipv6: true, subnet6, gateway6 } : {}),
    internal: body.Internal === true,
    labels: labels as Record<string, string>,
  });
  return json(201, { Id: net.id, Warning: "" });
}

/** `DELETE /networks/{id}`: 403 for the predefined ones and while containers use it. */
export function remove(ctx: ApiContext, _req: ApiRequest, ref: string) {
  if (PREDEFINED.has(ref)) {
    throw new HttpError(403, `${ref} is a pre-defined network and cannot be removed`);
  }
  const net = findNetwork(ctx.store, ref);
  if (!net) {
    inspectRef(ctx, ref); // 404, or a mode network's id
    throw new HttpError(403, `${ref} is a pre-defined network and cannot be removed`);
  }
  if (net.name === DEFAULT_NETWORK) {
    throw new HttpError(403, `${net.name} is a pre-defined network and cannot be removed`);
  }
  removeNetwork(ctx.store, net.id);
  return { status: 204 };
}

/** `POST /networks/prune?filters`: user networks no container uses (label and until filters). */
export function prune(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const f = parseFilters(filterValues(req.query.get("filters")), ["label", "label!", "until"]);
  const until = untilTimes(f.get("until"));
  const removed: string[] = [];
  for (const net of listNetworks(ctx.store)) {
    if (net.name === DEFAULT_NETWORK) continue;
    if (!matchLabels(f, net.labels)) continue;
    if (!until.every((t) => net.createdAt < t)) continue;
    if (leasesOf(ctx.store, net.id).length > 0) continue;
    removeNetwork(ctx.store, net.id);
    removed.push(net.name);
  }
  return json(200, { NetworksDeleted: removed });
}

/**
 * `POST /networks/{id}/connect` `{Container, EndpointConfig: {Aliases, IPAMConfig}}`: as
 * `network connect`; a running container is attached at once, a stopped one at its next start.
 */
export async function connect(ctx: ApiContext, req: ApiRequest, ref: string) {
  const body = await parseJsonBody(req);
  if (!isObject(body)) throw badParameter("connect config expected");
  const container = optString(body, "Container");
  if (!container) throw badParameter("Container: required");
  const ep = endpointOptions(body.EndpointConfig, "EndpointConfig");
  if (ref in MODE_NETWORKS) {
    throw new HttpError(
      403,
      `container cannot be disconnected from host network or connected to host network`,
    );
  }
  const net = requireNetworkApi(ctx, ref);
  const { connectNetwork } = await import("../container/networking.ts");
  await connectNetwork(ctx.store, net.id, container, ep);
  return { status: 200 };
}

/** `POST /networks/{id}/disconnect` `{Container, Force}`. */
export async function disconnect(ctx: ApiContext, req: ApiRequest, ref: string) {
  const body = await parseJsonBody(req);
  if (!isObject(body)) throw badParameter("disconnect config expected");
  const container = optString(body, "Container");
  if (!container) throw badParameter("Container: required");
  if (body.Force !== undefined && typeof body.Force !== "boolean") {
    throw badParameter("Force: expected a boolean");
  }
  const net = findNetwork(ctx.store, ref);
  if (!net && body.Force !== true) requireNetworkApi(ctx, ref);
  const { disconnectNetwork } = await import("../container/networking.ts");
  await disconnectNetwork(ctx.store, net?.name ?? ref, container, body.Force === true);
  return { status: 200 };
}

function requireNetworkApi(ctx: ApiContext, ref: string): NetworkRecord {
  if (ref === DEFAULT_NETWORK) ensureDefaultNetwork(ctx.store);
  const net = findNetwork(ctx.store, ref);
  if (!net) throw new HttpError(404, `network ${ref} not found`);
  return requireNetwork(ctx.store, net.id);
}

/** An endpoint's settings (create's `NetworkingConfig.EndpointsConfig.X`, connect's). */
export interface EndpointOptions {
  readonly aliases?: string[];
  readonly ip?: string;
  readonly ip6?: string;
}

/**
 * Decodes docker's EndpointSettings: Aliases and IPAMConfig.IPv4Address and IPv6Address (Links
 * not applied).
 */
export function endpointOptions(v: unknown, field: string): EndpointOptions {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw badParameter(`${field}: expected an object`);
  const aliases = v.Aliases;
  if (
    aliases !== undefined && aliases !== null &&
    (!Array.isArray(aliases) || aliases.some((a) => typeof a !== "string"))
  ) {
    throw badParameter(`${field}.Aliases: expected a list of strings`);
  }
  let ip: string | undefined, ip6: string | undefined;
  if (v.IPAMConfig !== undefined && v.IPAMConfig !== null) {
    if (!isObject(v.IPAMConfig)) throw badParameter(`${field}.IPAMConfig: expected an object`);
    ip = optString(v.IPAMConfig, "IPv4Address");
    ip6 = optString(v.IPAMConfig, "IPv6Address");
  }
  // Links are taken and not applied, as at create (create_body.ts).
  return {
    aliases: (aliases as string[] | null | undefined) ?? undefined,
    ip,
    ...(ip6 !== undefined ? { ip6 } : {}),
  };
}
