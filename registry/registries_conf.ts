/**
 * `registries.conf` (version 2) as podman, skopeo and buildah read it (containers/image's
 * `sysregistriesv2`): which registry a short name means, which registries are reached over plain
 * HTTP, which are blocked, where a repository really lives (`location`) and which mirrors a pull
 * tries first.
 *
 * Files, as containers/image picks them: `$CONTAINERS_REGISTRIES_CONF` alone when set (tsbox
 * reads no drop-ins then, so that a script or test gets exactly the file it names); otherwise
 * `$HOME/.config/containers/registries.conf` if it exists, else
 * `/etc/containers/registries.conf` followed by `/etc/containers/registries.conf.d/*.conf`; then
 * `$HOME/.config/containers/registries.conf.d/*.conf`. A later file replaces the search list it
 * sets and the `[[registry]]` entries whose prefix it repeats.
 *
 * The TOML parser (smol-toml, an npm package) is imported only when a file exists: a machine
 * without registries.conf never loads it.
 *
 * @module
 */
import { isValidDomain, parseReference, Reference } from "./reference.ts";

/** Which pulls a mirror serves (containers/image's `pull-from-mirror`). */
export type PullFromMirror = "all" | "digest-only" | "tag-only";

/** One `[[registry.mirror]]`. */
export interface RegistryMirror {
  /** `host[:port][/path]` the mirrored namespace is found under. */
  readonly location: string;
  /** Reach it over plain HTTP. */
  readonly insecure: boolean;
  /** Which references it is tried for. */
  readonly pullFromMirror: PullFromMirror;
}

/** One `[[registry]]` table, with its defaults filled in. */
export interface RegistryEntry {
  /** The namespace it applies to: `host[/path]` or `*.domain`. */
  readonly prefix: string;
  /** Where that namespace lives: `host[:port][/path]` (the prefix itself when not set). */
  readonly location: string;
  /** Reach `location` over plain HTTP. */
  readonly insecure: boolean;
  /** Refuse to pull or push anything under the prefix. */
  readonly blocked: boolean;
  /** Tried in order before `location`, for pulls only. */
  readonly mirrors: readonly RegistryMirror[];
  /** The file that defined it, for messages. */
  readonly file: string;
}

/** The merged configuration. */
export interface RegistriesConf {
  /** Registries a short name (`busybox`) is looked for in; the first one is used. */
  readonly unqualifiedSearchRegistries: readonly string[];
  /** The `[[registry]]` entries, by prefix. */
  readonly registries: readonly RegistryEntry[];
  /** The files read, in order (empty: none existed). */
  readonly files: readonly string[];
}

/** The configuration of a machine without any registries.conf: docker's behaviour. */
export const EMPTY_REGISTRIES_CONF: RegistriesConf = Object.freeze({
  unqualifiedSearchRegistries: [],
  registries: [],
  files: [],
});

/** Where in a file a value sits: the n-th `[[registry]]` (from 0), its n-th mirror, a key. */
export interface ConfPlace {
  readonly registry?: number;
  readonly mirror?: number;
  readonly key?: string;
}

/** A registries.conf that cannot be read or does not mean anything valid. */
export class RegistriesConfError extends Error {
  /**
   * @param file the file at fault.
   * @param detail what is wrong, naming the line or the key.
   * @param place the table and key at fault, when known (turned into a line number).
   */
  constructor(
    readonly file: string,
    readonly detail: string,
    options?: ErrorOptions,
    readonly place?: ConfPlace,
  ) {
    super(`${file}: ${detail}`, options);
    this.name = "RegistriesConfError";
  }
}

type Fail = (detail: string, place?: ConfPlace) => never;

/** A pull or push of a reference that a `blocked = true` entry covers. */
export class BlockedRegistryError extends Error {
  constructor(readonly reference: string, readonly entry: RegistryEntry) {
    super(
      `registry ${entry.prefix} is blocked in ${entry.file}: refusing to contact it for ` +
        reference,
    );
    this.name = "BlockedRegistryError";
  }
}

/** What one parsed file sets; unset fields leave the earlier files' values. */
export interface RegistriesConfFile {
  readonly file: string;
  readonly unqualifiedSearchRegistries?: readonly string[];
  readonly registries: readonly RegistryEntry[];
}

/** Where to look for the files; each field defaults to the process's environment. */
export interface RegistriesConfPaths {
  /** `$CONTAINERS_REGISTRIES_CONF`. */
  readonly override?: string;
  /** `$HOME`. */
  readonly home?: string;
  /** The system file, `/etc/containers/registries.conf` (tests point it elsewhere). */
  readonly system?: string;
}

const SYSTEM_FILE = "/etc/containers/registries.conf";
const USER_FILE = ".config/containers/registries.conf";

// Unknown top-level keys (short-name-mode, aliases, credential-helpers, newer ones) are ignored,
// as containers/image does: a newer podman's file must not stop tsbox. Inside [[registry]] a
// misspelt `blocked` would silently let traffic through, so unknown keys there are errors.
const REGISTRY_KEYS = new Set([
  "prefix",
  "location",
  "insecure",
  "blocked",
  "mirror-by-digest-only",
  "mirror",
]);
const MIRROR_KEYS = new Set(["location", "insecure", "pull-from-mirror"]);

/**
 * Parses one file's text (TOML v2 format) and checks every key tsbox uses.
 *
 * @throws {RegistriesConfError} naming the file and the line (syntax) or key (meaning).
 */
export async function parseRegistriesConf(
  text: string,
  file: string,
): Promise<RegistriesConfFile> {
  const { parse, TomlError } = await import("smol-toml");
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const cause = err.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw new RegistriesConfError(
        file,
        `line ${err.line}, column ${err.column}: invalid TOML: ${cause}`,
        { cause: err },
      );
    }
    throw err;
  }
  try {
    return fromToml(doc, file);
  } catch (err) {
    // The parsed document has no positions: find the key's line in the text.
    const line = err instanceof RegistriesConfError && err.place
      ? lineOf(text, err.place)
      : undefined;
    if (line === undefined) throw err;
    const e = err as RegistriesConfError;
    throw new RegistriesConfError(file, `line ${line}: ${e.detail}`, undefined, e.place);
  }
}

/**
 * The line of a key inside the n-th `[[registry]]` / `[[registry.mirror]]` table (or at the
 * top), found by the table headers; the table's header line when the key is not found, and
 * undefined where the document is not written with such headers.
 */
function lineOf(text: string, place: ConfPlace): number | undefined {
  const lines = text.split("\n");
  const headers: { kind: "registry" | "mirror" | "other"; line: number }[] = [];
  for (const [i, l] of lines.entries()) {
    const t = l.trim();
    if (/^\[\[\s*registry\s*\]\]/.test(t)) headers.push({ kind: "registry", line: i + 1 });
    else if (/^\[\[\s*registry\s*\.\s*mirror\s*\]\]/.test(t)) {
      headers.push({ kind: "mirror", line: i + 1 });
    } else if (t.startsWith("[")) headers.push({ kind: "other", line: i + 1 });
  }
  let start = 1;
  let table: number | undefined;
  if (place.registry !== undefined) {
    const registries = headers.filter((h) => h.kind === "registry");
    const header = registries[place.registry];
    if (!header) return undefined;
    start = table = header.line;
    if (place.mirror !== undefined) {
      const next = registries[place.registry + 1]?.line ?? Infinity;
      const mirror = headers.filter((h) =>
        h.kind === "mirror" && h.line > header.line && h.line < next
      )[place.mirror];
      if (!mirror) {
        return undefined;
      }
      start = table = mirror.line;
    }
  }
  const end = headers.find((h) => h.line > start || (table === undefined && h.line >= start))
    ?.line ?? lines.length + 1;
  if (place.key !== undefined) {
    const key = place.key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const re = new RegExp(`^\\s*(["']?)${key}\\1\\s*=`);
    for (let n = start; n < end; n++) if (re.test(lines[n - 1])) return n;
  }
  return table;
}

/** Checks a parsed TOML document; see {@link parseRegistriesConf}. */
export function fromToml(doc: Record<string, unknown>, file: string): RegistriesConfFile {
  const fail: Fail = (detail, place) => {
    throw new RegistriesConfError(file, detail, undefined, place);
  };
  if ("registries" in doc) {
    fail(
      "[registries.search]/[registries.insecure]/[registries.block] is the version 1 format, " +
        "which tsbox does not read; write unqualified-search-registries and [[registry]] " +
        "tables (version 2) instead",
    );
  }
  let search: string[] | undefined;
  const rawSearch = doc["unqualified-search-registries"];
  if (rawSearch !== undefined) {
    if (!Array.isArray(rawSearch)) {
      fail(
        `unqualified-search-registries must be an array of strings, not ${show(rawSearch)}`,
        { key: "unqualified-search-registries" },
      );
    }
    const place = { key: "unqualified-search-registries" };
    search = (rawSearch as unknown[]).map((v, i) => {
      const where = `unqualified-search-registries[${i}]`;
      if (typeof v !== "string") return fail(`${where} must be a string, not ${show(v)}`, place);
      if (!isValidDomain(v)) {
        return fail(
          `${where}: ${JSON.stringify(v)} is not a registry host ([host][:port])`,
          place,
        );
      }
      return v;
    });
  }
  const rawRegistries = doc.registry;
  const registries: RegistryEntry[] = [];
  if (rawRegistries !== undefined) {
    if (!Array.isArray(rawRegistries)) {
      fail("registry must be an array of tables ([[registry]]), not a single [registry] table");
    }
    for (const [i, raw] of (rawRegistries as unknown[]).entries()) {
      const here: Fail = (detail, place) => fail(detail, { ...place, registry: i });
      const entry = registryEntry(raw, `[[registry]] #${i + 1}`, file, here);
      const twin = registries.find((r) => r.prefix === entry.prefix);
      if (twin) {
        here(`[[registry]] #${i + 1}: prefix ${JSON.stringify(entry.prefix)} is defined twice`);
      }
      registries.push(entry);
    }
  }
  return search === undefined ? { file, registries } : {
    file,
    unqualifiedSearchRegistries: search,
    registries,
  };
}

function registryEntry(
  raw: unknown,
  name: string,
  file: string,
  fail: Fail,
): RegistryEntry {
  if (!isTable(raw)) return fail(`${name} must be a table, not ${show(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!REGISTRY_KEYS.has(key)) fail(`${name}: unknown key ${JSON.stringify(key)}`, { key });
  }
  const prefixRaw = optionalString(raw, "prefix", name, fail);
  const locationRaw = optionalString(raw, "location", name, fail);
  const label = `${name} (prefix ${JSON.stringify(prefixRaw ?? locationRaw ?? "")})`;
  const insecure = optionalBool(raw, "insecure", label, fail) ?? false;
  const blocked = optionalBool(raw, "blocked", label, fail) ?? false;
  const byDigestOnly = optionalBool(raw, "mirror-by-digest-only", label, fail);
  if (!prefixRaw && !locationRaw) fail(`${name}: needs a prefix or a location`);
  let location = locationRaw
    ? checkLocation(locationRaw, `${label}: location`, (d) => fail(d, { key: "location" }))
    : "";
  let prefix: string;
  if (prefixRaw?.startsWith("*.")) {
    // containers/image: a wildcard matches hosts; it cannot say where they are.
    if (location) fail(`${label}: a wildcard prefix cannot have a location`, { key: "location" });
    if (!/^\*\.[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*$/.test(prefixRaw)) {
      fail(`${label}: invalid wildcard prefix: it must be *.domain`, { key: "prefix" });
    }
    prefix = prefixRaw;
  } else {
    prefix = prefixRaw
      ? checkLocation(prefixRaw, `${label}: prefix`, (d) => fail(d, { key: "prefix" }))
      : location;
    location ||= prefix;
  }
  const mirrorsRaw = raw.mirror;
  const mirrors: RegistryMirror[] = [];
  if (mirrorsRaw !== undefined) {
    if (!Array.isArray(mirrorsRaw)) {
      fail(`${label}: mirror must be an array of tables ([[registry.mirror]])`, { key: "mirror" });
    }
    for (const [j, m] of (mirrorsRaw as unknown[]).entries()) {
      const mname = `${label}, [[registry.mirror]] #${j + 1}`;
      const failM: Fail = (detail, place) => fail(detail, { ...place, mirror: j });
      if (!isTable(m)) failM(`${mname} must be a table, not ${show(m)}`);
      const mt = m as Record<string, unknown>;
      for (const key of Object.keys(mt)) {
        if (!MIRROR_KEYS.has(key)) failM(`${mname}: unknown key ${JSON.stringify(key)}`, { key });
      }
      const loc = optionalString(mt, "location", mname, failM);
      if (!loc) failM(`${mname}: location is required`);
      const usage = optionalString(mt, "pull-from-mirror", mname, failM);
      if (usage !== undefined && !["all", "digest-only", "tag-only"].includes(usage)) {
        failM(
          `${mname}: pull-from-mirror must be "all", "digest-only" or "tag-only", not ` +
            JSON.stringify(usage),
          { key: "pull-from-mirror" },
        );
      }
      if (usage !== undefined && byDigestOnly) {
        failM(
          `${mname}: pull-from-mirror cannot be set while the registry sets ` +
            "mirror-by-digest-only",
          { key: "pull-from-mirror" },
        );
      }
      mirrors.push({
        location: checkLocation(loc!, `${mname}: location`, (d) => failM(d, { key: "location" })),
        insecure: optionalBool(mt, "insecure", mname, failM) ?? false,
        pullFromMirror: (usage as PullFromMirror | undefined) ??
          (byDigestOnly ? "digest-only" : "all"),
      });
    }
  }
  return { prefix, location, insecure, blocked, mirrors, file };
}

/** `host[:port][/path]` without scheme or trailing slash; returns it normalised. */
function checkLocation(value: string, where: string, fail: (detail: string) => never): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    fail(`${where} ${JSON.stringify(value)}: URI schemes are not supported; write host[:port]`);
  }
  const v = value.replace(/\/+$/, "");
  const slash = v.indexOf("/");
  const host = slash === -1 ? v : v.slice(0, slash);
  if (!isValidDomain(host)) {
    fail(`${where} ${JSON.stringify(value)}: ${JSON.stringify(host)} is not a registry host`);
  }
  if (slash !== -1 && !isRepositoryPath(v.slice(slash + 1))) {
    fail(`${where} ${JSON.stringify(value)}: invalid repository path after the host`);
  }
  return v;
}

/** A valid repository path (`library/busybox`), by the reference grammar. */
function isRepositoryPath(path: string): boolean {
  try {
    return parseReference(`localhost/${path}`).path === path;
  } catch {
    return false;
  }
}

function optionalString(
  t: Record<string, unknown>,
  key: string,
  where: string,
  fail: Fail,
): string | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") fail(`${where}: ${key} must be a string, not ${show(v)}`, { key });
  return v as string;
}

function optionalBool(
  t: Record<string, unknown>,
  key: string,
  where: string,
  fail: Fail,
): boolean | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") {
    fail(`${where}: ${key} must be true or false, not ${show(v)}`, { key });
  }
  return v as boolean;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function show(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (isTable(v)) return "a table";
  return JSON.stringify(v) ?? String(v);
}

/** Merges files in order: later search lists replace earlier ones, entries replace by prefix. */
export function mergeRegistriesConf(files: readonly RegistriesConfFile[]): RegistriesConf {
  let search: readonly string[] = [];
  const byPrefix = new Map<string, RegistryEntry>();
  for (const f of files) {
    if (f.unqualifiedSearchRegistries !== undefined) search = f.unqualifiedSearchRegistries;
    for (const r of f.registries) {
      byPrefix.delete(r.prefix); // a replaced entry takes the place of the newer file
      byPrefix.set(r.prefix, r);
    }
  }
  return {
    unqualifiedSearchRegistries: search,
    registries: [...byPrefix.values()],
    files: files.map((f) => f.file),
  };
}

/** The files to read, in order; see the module's documentation. */
export async function registriesConfFiles(paths: RegistriesConfPaths = {}): Promise<string[]> {
  const override = "override" in paths
    ? paths.override
    : Deno.env.get("CONTAINERS_REGISTRIES_CONF");
  if (override) return [override];
  const home = "home" in paths ? paths.home : Deno.env.get("HOME");
  const system = paths.system ?? SYSTEM_FILE;
  const out: string[] = [];
  const user = home ? `${home}/${USER_FILE}` : undefined;
  if (user && await exists(user)) {
    out.push(user);
  } else {
    if (await exists(system)) out.push(system);
    out.push(...await dropIns(`${system}.d`));
  }
  if (user) out.push(...await dropIns(`${user}.d`));
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw new RegistriesConfError(path, `cannot read it: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** `DIR/*.conf` in name order, as containers/image reads drop-ins. */
async function dropIns(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".conf") && !e.isDirectory) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return [];
    }
    throw new RegistriesConfError(dir, `cannot read the directory: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return names.sort().map((n) => `${dir}/${n}`);
}

/**
 * Reads and merges the configuration (see the module's documentation). With no file at all it
 * returns {@link EMPTY_REGISTRIES_CONF} without loading the TOML parser.
 *
 * @throws {RegistriesConfError} for a file that is unreadable or invalid, and for a
 *   `CONTAINERS_REGISTRIES_CONF` that names no file (it was asked for explicitly).
 */
export async function loadRegistriesConf(
  paths: RegistriesConfPaths = {},
): Promise<RegistriesConf> {
  const files = await registriesConfFiles(paths);
  if (files.length === 0) return EMPTY_REGISTRIES_CONF;
  const explicit = "override" in paths
    ? paths.override
    : Deno.env.get("CONTAINERS_REGISTRIES_CONF");
  const parsed: RegistriesConfFile[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (err) {
      const why = err instanceof Deno.errors.NotFound
        ? "no such file" + (file === explicit ? " (named by CONTAINERS_REGISTRIES_CONF)" : "")
        : (err as Error).message;
      throw new RegistriesConfError(file, `cannot read it: ${why}`, { cause: err });
    }
    parsed.push(await parseRegistriesConf(text, file));
  }
  return mergeRegistriesConf(parsed);
}

/**
 * True when `name` names no registry (`busybox`, `user/app:1`), so docker would put it on
 * docker.io: the part before the first `/` is a registry only with a `.` or `:`, as `localhost`,
 * or with uppercase letters (reference.ts's rule).
 */
export function isShortName(name: string): boolean {
  const i = name.indexOf("/");
  if (i === -1) return true;
  const first = name.slice(0, i);
  return !/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first;
}

/**
 * The fully qualified name a pull of `name` means: a short name goes to the first of
 * `unqualified-search-registries` (docker.io when none is set, as docker does); a qualified
 * name is returned unchanged.
 */
export function qualifyName(conf: RegistriesConf, name: string): string {
  const first = conf.unqualifiedSearchRegistries[0];
  if (first === undefined || !isShortName(name)) return name;
  return `${first}/${name}`;
}

/** The `[[registry]]` entry covering a reference: the longest matching prefix. */
export function findRegistry(conf: RegistriesConf, ref: Reference): RegistryEntry | undefined {
  return longestMatch(conf, ref.repository);
}

function longestMatch(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const r of conf.registries) {
    if (prefixMatches(r.prefix, name) && (!best || r.prefix.length > best.prefix.length)) {
      best = r;
    }
  }
  return best;
}

/** containers/image's matching: a prefix ends at a path boundary; `*.d` matches hosts. */
function prefixMatches(prefix: string, name: string): boolean {
  if (prefix.startsWith("*.")) {
    const hostPart = name.split("/")[0];
    const host = hostPart.replace(/:\d+$/, "");
    return host.endsWith(prefix.slice(1));
  }
  if (!name.startsWith(prefix)) return false;
  return name.length === prefix.length || name[prefix.length] === "/";
}

/** A place to pull from or push to. */
export interface Endpoint {
  /** The reference as that registry knows it (location rewritten, same tag and digest). */
  readonly ref: Reference;
  /** Reach its host over plain HTTP. */
  readonly insecure: boolean;
  /** True for a `[[registry.mirror]]`. */
  readonly mirror: boolean;
}

/** `location` + what follows `prefix` in the reference's name. */
function rewrite(entry: RegistryEntry, location: string, ref: Reference): Reference {
  if (entry.prefix.startsWith("*.")) {
    return new Reference(ref.domain, ref.path, ref.tag, ref.digest);
  }
  const full = location + ref.repository.slice(entry.prefix.length);
  const slash = full.indexOf("/");
  if (slash === -1) {
    throw new RegistriesConfError(
      entry.file,
      `[[registry]] prefix ${JSON.stringify(entry.prefix)}: rewriting ${ref.repository} with ` +
        `location ${JSON.stringify(location)} gives ${JSON.stringify(full)}, which names no ` +
        "repository",
    );
  }
  return new Reference(full.slice(0, slash), full.slice(slash + 1), ref.tag, ref.digest);
}

/**
 * Where a pull of `ref` goes, in order: the mirrors that serve it (digest-only mirrors for a
 * digest reference, tag-only ones for a tag), then the registry's location.
 *
 * @throws {BlockedRegistryError} when the entry is blocked: nothing may be contacted.
 */
export function pullEndpoints(conf: RegistriesConf, ref: Reference): Endpoint[] {
  const entry = findRegistry(conf, ref);
  if (!entry) return [{ ref, insecure: false, mirror: false }];
  if (entry.blocked) throw new BlockedRegistryError(ref.toString(), entry);
  const byDigest = ref.digest !== undefined;
  const out: Endpoint[] = [];
  for (const m of entry.mirrors) {
    if (m.pullFromMirror === "digest-only" && !byDigest) continue;
    if (m.pullFromMirror === "tag-only" && byDigest) continue;
    out.push({ ref: rewrite(entry, m.location, ref), insecure: m.insecure, mirror: true });
  }
  out.push({ ref: rewrite(entry, entry.location, ref), insecure: entry.insecure, mirror: false });
  return out;
}

/**
 * Where a push of `ref` goes: the registry's location, never a mirror.
 *
 * @throws {BlockedRegistryError} when the entry is blocked.
 */
export function pushEndpoint(conf: RegistriesConf, ref: Reference): Endpoint {
  const entry = findRegistry(conf, ref);
  if (!entry) return { ref, insecure: false, mirror: false };
  if (entry.blocked) throw new BlockedRegistryError(ref.toString(), entry);
  return { ref: rewrite(entry, entry.location, ref), insecure: entry.insecure, mirror: false };
}

/** True when a `[[registry]]` entry marks the registry `domain` insecure (for `login`). */
export function isInsecureDomain(conf: RegistriesConf, domain: string): boolean {
  return longestMatch(conf, domain)?.insecure ?? false;
}
