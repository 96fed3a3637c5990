/**
 * `ps --filter` and `ps -a/-n/-l` as docker's daemon applies them (daemon/list.go): values are
 * checked before anything is listed, then the containers, newest first, go through the filters
 * in docker's order. Values of one key are alternatives except `label`, whose values must all
 * hold; different keys must all hold.
 *
 * @module
 */
import { type ContainerRecord, isActive, requireContainer } from "../container/state.ts";
import { healthFilterValue } from "../container/health.ts";
import { volumeMountsOf } from "../container/volumes.ts";
import { NotFoundError } from "../errors.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { inspectPorts } from "../net/publish.ts";
import {
  boolFilter,
  FilterError,
  type Filters,
  InvalidFilterError,
  matchesPattern,
  matchLabels,
  parseFilters,
} from "./filters.ts";

/** The keys `ps --filter` takes. */
export const PS_FILTER_KEYS = [
  "ancestor",
  "before",
  "exited",
  "expose",
  "health",
  "id",
  "is-task",
  "isolation",
  "label",
  "label!",
  "name",
  "network",
  "publish",
  "since",
  "status",
  "volume",
] as const;

/** The states docker's `--filter status=` accepts. */
const STATUSES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

/** The values docker's `--filter health=` accepts. */
const HEALTH = ["starting", "healthy", "unhealthy", "none"];

/** What `ps` was asked besides the filters. */
export interface ListOptions {
  /** `-a`. */
  readonly all?: boolean;
  /** `-n N` (`-l` is 1): the N newest, in any state; 0 or less is no limit. */
  readonly limit?: number;
}

/** The filters of a `ps`, checked and resolved: built before anything is listed. */
export interface ContainerFilter {
  /** Keeps the containers of `newestFirst` that `ps` shows, in that order. */
  apply(newestFirst: readonly ContainerRecord[]): ContainerRecord[];
}

/**
 * The network names of a container as docker's `NETWORKS` column shows them: its bridge
 * networks, `private` for tsbox's lo-only namespace, `host`, `none`; a container sharing
 * another's network has none.
 */
export function networkNames(c: ContainerRecord): string[] {
  const endpoints = c.config.net?.endpoints ?? [];
  if (endpoints.length > 0) return endpoints.map((e) => e.network);
  const mode = c.config.network;
  return mode.startsWith("container:") ? [] : [mode];
}

/** The health status docker's `health=` filter compares with (health.ts). */
export function healthStatus(c: ContainerRecord): string {
  return healthFilterValue(c.health);
}

/**
 * Checks `--filter` values as docker does (unknown keys, statuses, exit codes, health states,
 * `before`/`since` containers that must exist) and returns the filter to apply.
 */
export function containerFilter(
  store: Store,
  values: readonly string[],
  options: ListOptions = {},
): ContainerFilter {
  const filters = parseFilters(values, PS_FILTER_KEYS);
  for (const v of filters.get("status") ?? []) {
    if (!STATUSES.includes(v)) throw new InvalidFilterError(`status=${v}`);
  }
  const exited = (filters.get("exited") ?? []).map((v) => {
    if (!/^[+-]?\d+$/.test(v)) {
      throw new FilterError(`strconv.Atoi: parsing "${v}": invalid syntax`);
    }
    return Number(v);
  });
  for (const v of filters.get("health") ?? []) {
    if (!HEALTH.includes(v)) throw new FilterError(`Unrecognised filter value for health: ${v}`);
  }
  // Swarm tasks do not exist here: `is-task=false` is every container, `true` none.
  const isTask = boolFilter(filters, "is-task");
  const publish = portSet("publish", filters.get("publish"));
  const expose = portSet("expose", filters.get("expose"));
  // docker's `before`/`since` keep the last value given.
  const before = containerNamed(store, filters.get("before")?.at(-1));
  const since = containerNamed(store, filters.get("since")?.at(-1));
  const ancestors = filters.has("ancestor")
    ? ancestorIds(store, filters.get("ancestor")!)
    : undefined;
  // `status=` lists every state, as docker sets `-a` for it.
  const all = options.all === true || filters.has("status");
  const limit = options.limit ?? 0;

  return {
    apply(newestFirst) {
      const out: ContainerRecord[] = [];
      let beforeSeen = before === undefined;
      for (const c of newestFirst) {
        // `before=X`: what was created before X, so everything up to X itself is skipped.
        if (!beforeSeen) {
          beforeSeen = c.id === before;
          continue;
        }
        // `since=X`: what was created after X; the list is newest first.
        if (c.id === since) break;
        if (!isActive(c.state) && !all && limit <= 0) continue;
        if (limit > 0 && out.length === limit) break;
        if (isTask === true) break;
        if (!matches(store, c, filters, exited, ancestors)) continue;
        if ((publish || expose) && !matchesPorts(store, c, publish, expose)) continue;
        out.push(c);
      }
      return out;
    },
  };
}

function matches(
  store: Store,
  c: ContainerRecord,
  filters: Filters,
  exited: readonly number[],
  ancestors: ReadonlySet<string> | undefined,
): boolean {
  const any = (key: string, test: (v: string) => boolean) => {
    const values = filters.get(key);
    return values === undefined || values.some(test);
  };
  if (!any("name", (v) => matchesPattern(v, c.name) || matchesPattern(v, `/${c.name}`))) {
    return false;
  }
  if (!any("id", (v) => c.id.startsWith(v))) return false;
  if (!matchLabels(filters, c.config.labels ?? {})) return false;
  // docker: only a container that ran and stopped has an exit code to match.
  if (
    exited.length > 0 &&
    !(c.state === "exited" && c.startedAt !== undefined &&
      exited.includes(c.exitCode ?? 0))
  ) {
    return false;
  }
  // Linux containers have docker's `default` isolation.
  if (!any("isolation", (v) => matchesPattern(v, "default"))) return false;
  if (!any("status", (v) => v === c.state)) return false;
  if (!any("health", (v) => v === healthStatus(c))) return false;
  if (filters.has("volume")) {
    const volumes = volumeMountsOf(store, c.id);
    const names = new Set([
      ...volumes.map((v) => v.name),
      ...c.config.mounts.flatMap((m) => m.kind === "bind" ? [m.source] : []),
    ]);
    const destinations = new Set(c.config.mounts.map((m) => m.target));
    if (!any("volume", (v) => names.has(v) || destinations.has(v))) return false;
  }
  if (ancestors && !ancestors.has(c.imageId)) return false;
  if (!any("network", (v) => networkNames(c).includes(v))) return false;
  return true;
}

/**
 * `publish=`/`expose=` values (`80`, `80/udp`, `8000-8010/tcp`) as the set of `PORT/PROTO` they
 * name, checked as docker checks them. Undefined when the key is not given.
 */
function portSet(key: string, values: readonly string[] | undefined): Set<string> | undefined {
  if (values === undefined) return undefined;
  const out = new Set<string>();
  for (const value of values) {
    if (value.includes(":")) {
      throw new FilterError(`filter for '${key}' should not contain ':': ${value}`);
    }
    const [range, proto = "tcp"] = value.split("/");
    const m = /^(\d+)(?:-(\d+))?$/.exec(range);
    const start = m ? Number(m[1]) : NaN;
    const end = m?.[2] !== undefined ? Number(m[2]) : start;
    if (!m || start < 1 || end > 65535 || end < start || proto === "") {
      throw new FilterError(`error while looking up for ${key} ${value}: invalid port range`);
    }
    for (let p = start; p <= end; p++) out.add(`${p}/${proto.toLowerCase()}`);
  }
  return out;
}

/**
 * docker's port filters: a container matches when one of its ports is published on a host port
 * of `publish`, or one of its exposed (or published) container ports is in `expose`.
 */
function matchesPorts(
  store: Store,
  c: ContainerRecord,
  publish: ReadonlySet<string> | undefined,
  expose: ReadonlySet<string> | undefined,
): boolean {
  for (const [key, bindings] of Object.entries(inspectPorts(store, c))) {
    const proto = key.split("/")[1];
    if (bindings?.some((b) => publish?.has(`${b.HostPort}/${proto}`))) return true;
    if (expose?.has(key)) return true;
  }
  return false;
}

/** The id of the container `ref` names (`before=`/`since=`); docker's error when none does. */
function containerNamed(store: Store, ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  try {
    return requireContainer(store, ref).id;
  } catch (err) {
    if (err instanceof NotFoundError) throw new FilterError(err.message);
    throw err;
  }
}

/**
 * `ancestor=`: the ids of each named image (name, id or id prefix) and of its descendants, the
 * images whose layers extend its own. A name that is no image matches nothing (docker only logs
 * it).
 */
function ancestorIds(store: Store, refs: readonly string[]): Set<string> {
  const named = refs.map((r) => store.findImage(r)).filter((i): i is ImageRecord => !!i);
  const ids = new Set(named.map((i) => i.id));
  if (named.length === 0) return ids;
  for (const image of store.listImages()) {
    if (named.some((a) => descends(image, a))) ids.add(image.id);
  }
  return ids;
}

/** Whether `child` was built on `parent`: more layers, starting with all of the parent's. */
export function descends(child: ImageRecord, parent: ImageRecord): boolean {
  return child.layers.length > parent.layers.length &&
    parent.layers.every((l, i) => child.layers[i].diffId === l.diffId);
}
