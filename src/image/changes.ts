/**
 * `-c/--change`: docker's Dockerfile instructions applied to an image config without a build
 * (`commit`, later `import`). Each change is one instruction, parsed by the Dockerfile parser
 * and expanded with the config's own environment, as docker's commit dispatches them.
 *
 * @module
 */
import { posix } from "node:path";
import type { ContainerConfig } from "../../registry/manifest.ts";
import { parseDockerfile } from "../builder/dockerfile.ts";
import { execForm } from "../builder/exec_form.ts";
import { expandOnly, type Lookup, processWord, processWords } from "../builder/words.ts";
import { DEFAULT_PATH } from "../runtime/config.ts";
import { UsageError } from "../errors.ts";

/** Instructions docker's commit takes that tsbox applies. */
const SUPPORTED = new Set([
  "CMD",
  "ENTRYPOINT",
  "ENV",
  "EXPOSE",
  "LABEL",
  "USER",
  "WORKDIR",
  "VOLUME",
  "STOPSIGNAL",
]);

/** Taken by docker's commit, not (yet) by tsbox's: refused by name instead of ignored. */
const NOT_YET = new Set(["ONBUILD", "HEALTHCHECK"]);

/** One parsed change: its keyword and argument text. */
export interface Change {
  readonly keyword: string;
  readonly args: string;
}

/**
 * Parses the `--change` values, refusing (exit 125, before anything is made) what docker's
 * commit refuses: an instruction that is not a change command, or text that is not one
 * instruction.
 */
export function parseChanges(values: readonly string[]): Change[] {
  return values.map((value) => {
    // A FROM would start a stage of its own instead of being one instruction of this one.
    if (/^\s*from(\s|$)/i.test(value)) throw new UsageError("from is not a valid change command");
    let instructions;
    try {
      // The parser wants a FROM first; the change is line 2.
      instructions = parseDockerfile(`FROM scratch\n${value}`, "--change").stages[0]?.instructions;
    } catch (err) {
      throw new UsageError(`invalid --change ${JSON.stringify(value)}: ${(err as Error).message}`);
    }
    if (!instructions || instructions.length !== 1) {
      throw new UsageError(`invalid --change ${JSON.stringify(value)}: give one instruction`);
    }
    const { keyword, args, flags } = instructions[0];
    if (NOT_YET.has(keyword)) {
      throw new UsageError(`${keyword} is not supported by tsbox's --change yet`);
    }
    if (!SUPPORTED.has(keyword)) {
      throw new UsageError(`${keyword.toLowerCase()} is not a valid change command`);
    }
    if (flags.length > 0) {
      throw new UsageError(`${keyword} takes no flags: ${JSON.stringify(value)}`);
    }
    return { keyword, args };
  });
}

function lookupIn(config: ContainerConfig): Lookup {
  return (name) => {
    const hit = (config.Env ?? []).findLast((e) => e.startsWith(`${name}=`));
    return hit?.slice(name.length + 1);
  };
}

function setEnv(env: string[], name: string, value: string): string[] {
  return [...env.filter((e) => !e.startsWith(`${name}=`)), `${name}=${value}`];
}

/** `ENV`/`LABEL` pairs: `K=V ...`, or the legacy `K value with spaces`. */
function pairs(c: Change, lookup: Lookup): [string, string][] {
  const words = processWords(c.args, lookup);
  if (words.length > 0 && !words[0].includes("=")) {
    const rest = c.args.trim().slice(c.args.trim().search(/\s/)).trim();
    if (words.length < 2) throw new UsageError(`${c.keyword} names no value`);
    return [[words[0], processWord(rest, lookup)]];
  }
  return words.map((w) => {
    const i = w.indexOf("=");
    if (i <= 0) throw new UsageError(`${c.keyword} names can not be blank: ${w}`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

/**
 * Applies `changes` in order to `config` (changed in place), as docker's commit does: an
 * ENTRYPOINT drops the Cmd unless a CMD came before it among the changes.
 */
export function applyChanges(config: ContainerConfig, changes: readonly Change[]): void {
  let cmdSet = false;
  for (const c of changes) {
    const lookup = lookupIn(config);
    const word = () => processWord(c.args.trim(), lookup);
    switch (c.keyword) {
      case "CMD":
      case "ENTRYPOINT": {
        const argv = execForm(c.args) ?? [...(config.Shell ?? ["/bin/sh", "-c"]), c.args.trim()];
        if (c.keyword === "CMD") {
          config.Cmd = argv;
          cmdSet = true;
        } else {
          config.Entrypoint = argv;
          if (!cmdSet) config.Cmd = null;
        }
        break;
      }
      case "ENV": {
        let env = config.Env ?? [];
        if (!env.some((e) => e.startsWith("PATH="))) env = [`PATH=${DEFAULT_PATH}`, ...env];
        for (const [k, v] of pairs(c, lookup)) env = setEnv(env, k, v);
        config.Env = env;
        break;
      }
      case "LABEL":
        config.Labels = { ...(config.Labels ?? {}), ...Object.fromEntries(pairs(c, lookup)) };
        break;
      case "EXPOSE": {
        const ports = processWords(c.args, lookup).map((p) => p.includes("/") ? p : `${p}/tcp`);
        config.ExposedPorts = { ...(config.ExposedPorts ?? {}) };
        for (const p of ports) {
          if (!/^\d+(-\d+)?\/(tcp|udp|sctp)$/i.test(p)) {
            throw new UsageError(`invalid containerPort: ${p.split("/")[0]}`);
          }
          config.ExposedPorts[p.toLowerCase()] = {};
        }
        break;
      }
      case "USER":
        config.User = word();
        break;
      case "WORKDIR":
        config.WorkingDir = posix.resolve(config.WorkingDir || "/", word());
        break;
      case "VOLUME": {
        const json = execForm(c.args);
        const vols = json ? json.map((v) => expandOnly(v, lookup)) : processWords(c.args, lookup);
        config.Volumes = { ...(config.Volumes ?? {}) };
        for (const v of vols) config.Volumes[v] = {};
        break;
      }
      case "STOPSIGNAL":
        config.StopSignal = word();
        break;
    }
  }
}
