/**
 * `-c/--change` of `import` (and `commit`): Dockerfile instructions applied to an image's
 * config, the ones docker allows there (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
 * STOPSIGNAL, USER, VOLUME, WORKDIR). Variables are expanded from the config's Env as a build
 * would.
 *
 * @module
 */
import { posix } from "node:path";
import type { ContainerConfig } from "../../registry/manifest.ts";
import { TsboxError } from "../errors.ts";
import { processWord, processWords } from "../build/words.ts";

const ALLOWED = new Set([
  "CMD",
  "ENTRYPOINT",
  "ENV",
  "EXPOSE",
  "LABEL",
  "ONBUILD",
  "STOPSIGNAL",
  "USER",
  "VOLUME",
  "WORKDIR",
]);

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  try {
    const v = JSON.parse(args);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  } catch { /* shell form after all */ }
  return undefined;
}

function pairs(keyword: string, args: string, lookup: (n: string) => string | undefined) {
  const words = processWords(args, lookup);
  if (words.length > 0 && !words[0].includes("=")) {
    // Legacy form: `ENV NAME value with spaces`.
    if (words.length < 2) throw new TsboxError(`${keyword} names no value`);
    const rest = args.slice(args.search(/\s/)).trim();
    return [[words[0], processWord(rest, lookup)]] as [string, string][];
  }
  return words.map((w): [string, string] => {
    const i = w.indexOf("=");
    if (i <= 0) throw new TsboxError(`${keyword} names can not be blank: ${w}`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

/** `config` with each of `changes` applied, in order (a new object; `config` is unchanged). */
export function applyChanges(
  config: ContainerConfig,
  changes: readonly string[],
): ContainerConfig {
  const c: ContainerConfig = structuredClone(config);
  for (const change of changes) {
    const text = change.trim();
    const m = /^(\S+)\s*([\s\S]*)$/.exec(text);
    if (!m) continue;
    const keyword = m[1].toUpperCase();
    const args = m[2].trim();
    if (!ALLOWED.has(keyword)) throw new TsboxError(`${m[1]} is not a valid change command`);
    const env = new Map((c.Env ?? []).map((e) => {
      const i = e.indexOf("=");
      return [e.slice(0, i), e.slice(i + 1)] as const;
    }));
    const lookup = (name: string) => env.get(name);
    const shell = c.Shell ?? ["/bin/sh", "-c"];
    switch (keyword) {
      case "CMD":
        c.Cmd = execForm(args) ?? [...shell, args];
        break;
      case "ENTRYPOINT":
        c.Entrypoint = execForm(args) ?? [...shell, args];
        break;
      case "ENV": {
        let list = c.Env ?? [];
        if (!list.some((e) => e.startsWith("PATH="))) list = [`PATH=${DEFAULT_PATH}`, ...list];
        for (const [k, v] of pairs(keyword, args, lookup)) {
          list = [...list.filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
        }
        c.Env = list;
        break;
      }
      case "LABEL":
        c.Labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of pairs(keyword, args, lookup)) c.Labels[k] = v;
        break;
      case "EXPOSE":
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        for (const p of processWords(args, lookup)) {
          const port = (p.includes("/") ? p : `${p}/tcp`).toLowerCase();
          if (!/^\d+(-\d+)?\/(tcp|udp|sctp)$/.test(port)) {
            throw new TsboxError(`invalid port ${p}`);
          }
          c.ExposedPorts[port] = {};
        }
        break;
      case "ONBUILD":
        c.OnBuild = [...(c.OnBuild ?? []), args];
        break;
      case "STOPSIGNAL":
        c.StopSignal = processWord(args, lookup);
        break;
      case "USER":
        c.User = processWord(args, lookup);
        break;
      case "VOLUME": {
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const v of execForm(args) ?? processWords(args, lookup)) c.Volumes[v] = {};
        break;
      }
      case "WORKDIR":
        c.WorkingDir = posix.resolve(c.WorkingDir || "/", processWord(args, lookup));
        break;
    }
  }
  return c;
}
