/**
 * The flags and arguments of the hot commands (`--version`, `ps`, `inspect`, `start`, `stop`,
 * `rm`, `exec`, `run`, `pull`) as data, for the parser that runs them without loading commander
 * (hot_parse.ts). commander's declarations (the *_command.ts files) stay the one source: this
 * table is what hot_spec_test.ts derives from them, and that test fails when the two differ.
 * `--root`'s default (per user, DEFAULT_ROOT in globals.ts) is left to `globalsFrom`, which
 * gives the same root, so that parsing loads nothing of the runtime.
 *
 * @module
 */
/** Names of the value parsers in arg_parsers.ts / filters.ts (commander's `parseArg`). */
export type ParserName =
  | "collect"
  | "collectFilter"
  | "intArg"
  | "envFile"
  | "label"
  | "networkMode"
  | "goDuration"
  | "retries";

/** One option as commander declares it. */
export interface HotOption {
  /** `-a`, when the option has a short form. */
  readonly short?: string;
  /** `--all`, `--no-trunc`. */
  readonly long: string;
  /** commander's attribute name (`noTrunc` is `trunc`). */
  readonly key: string;
  /** Takes a value (`<x>`); a boolean flag otherwise. */
  readonly value?: boolean;
  /** A `--no-x` flag: `x` is true until given. */
  readonly negate?: boolean;
  /** commander's `parseArg`. */
  readonly parser?: ParserName;
  /** The value before any flag. */
  readonly default?: string;
  /** The environment variable that gives the value when the flag is absent. */
  readonly env?: string;
  /**
   * commander does more for it than set its value (an `option:` listener, as `--net` sets
   * `network`): command lines that give it are left to commander.
   */
  readonly listened?: boolean;
}

/** One positional argument (`<x>`, `[x...]`). */
export interface HotArgument {
  readonly required: boolean;
  readonly variadic: boolean;
}

/** A hot command: its arguments, whether options stop at the first argument, its options. */
export interface HotCommand {
  readonly args: readonly HotArgument[];
  readonly passThrough: boolean;
  readonly options: readonly HotOption[];
}

/** The program's own options (before the command). */
export const HOT_PROGRAM_OPTIONS: readonly HotOption[] = [
  { short: "-v", long: "--version", key: "version" },
  { long: "--root", key: "root", value: true, env: "TSBOX_ROOT" },
  { long: "--runroot", key: "runroot", value: true, env: "TSBOX_RUNROOT" },
  { short: "-D", long: "--debug", key: "debug" },
  { long: "--insecure-registry", key: "insecureRegistry", value: true, parser: "collect" },
  { long: "--userns-remap", key: "usernsRemap", value: true },
];

/** The hot commands, by name. */
export const HOT_COMMANDS: Readonly<Record<string, HotCommand>> = {
  ps: {
    args: [],
    passThrough: false,
    options: [
      { short: "-a", long: "--all", key: "all" },
      { short: "-q", long: "--quiet", key: "quiet" },
      { long: "--no-trunc", key: "trunc", negate: true },
      { short: "-n", long: "--last", key: "last", value: true, parser: "intArg" },
      { short: "-l", long: "--latest", key: "latest" },
      { short: "-s", long: "--size", key: "size" },
      { short: "-f", long: "--filter", key: "filter", value: true, parser: "collectFilter" },
      { long: "--format", key: "format", value: true },
    ],
  },
  inspect: {
    args: [{ required: true, variadic: true }],
    passThrough: false,
    options: [
      { short: "-f", long: "--format", key: "format", value: true },
    ],
  },
  start: {
    args: [{ required: true, variadic: true }],
    passThrough: false,
    options: [
      { short: "-a", long: "--attach", key: "attach" },
      { short: "-i", long: "--interactive", key: "interactive" },
    ],
  },
  stop: {
    args: [{ required: true, variadic: true }],
    passThrough: false,
    options: [
      { short: "-t", long: "--timeout", key: "timeout", value: true },
      { long: "--time", key: "time", value: true },
      { short: "-s", long: "--signal", key: "signal", value: true },
    ],
  },
  pull: {
    args: [{ required: true, variadic: false }],
    passThrough: false,
    options: [
      { short: "-q", long: "--quiet", key: "quiet" },
      { long: "--platform", key: "platform", value: true },
    ],
  },
  rm: {
    args: [{ required: true, variadic: true }],
    passThrough: false,
    options: [
      { short: "-f", long: "--force", key: "force" },
      { short: "-v", long: "--volumes", key: "volumes" },
    ],
  },
  exec: {
    args: [{ required: true, variadic: false }, { required: true, variadic: true }],
    passThrough: true,
    options: [
      { short: "-i", long: "--interactive", key: "interactive" },
      { short: "-t", long: "--tty", key: "tty" },
      { short: "-d", long: "--detach", key: "detach" },
      { short: "-e", long: "--env", key: "env", value: true, parser: "collect" },
      { short: "-w", long: "--workdir", key: "workdir", value: true },
      { short: "-u", long: "--user", key: "user", value: true },
    ],
  },
  run: {
    args: [{ required: true, variadic: false }, { required: false, variadic: true }],
    passThrough: true,
    options: [
      { long: "--rm", key: "rm" },
      { long: "--restart", key: "restart", value: true },
      { long: "--stop-signal", key: "stopSignal", value: true },
      { long: "--stop-timeout", key: "stopTimeout", value: true },
      { long: "--name", key: "name", value: true },
      { short: "-h", long: "--hostname", key: "hostname", value: true },
      { short: "-e", long: "--env", key: "env", value: true, parser: "collect" },
      { long: "--env-file", key: "envFile", value: true, parser: "envFile" },
      { short: "-l", long: "--label", key: "label", value: true, parser: "label" },
      { long: "--label-file", key: "labelFile", value: true, parser: "collect" },
      { short: "-w", long: "--workdir", key: "workdir", value: true },
      { short: "-u", long: "--user", key: "user", value: true },
      { long: "--entrypoint", key: "entrypoint", value: true },
      { long: "--network", key: "network", value: true, parser: "networkMode", default: "default" },
      { long: "--net", key: "net", value: true, parser: "networkMode", listened: true },
      { long: "--ipc", key: "ipc", value: true },
      { long: "--pid", key: "pid", value: true },
      { long: "--uts", key: "uts", value: true },
      { long: "--cgroupns", key: "cgroupns", value: true },
      { long: "--ip", key: "ip", value: true },
      { long: "--ip6", key: "ip6", value: true },
      { long: "--network-alias", key: "networkAlias", value: true, parser: "collect" },
      { long: "--dns", key: "dns", value: true, parser: "collect" },
      { long: "--dns-search", key: "dnsSearch", value: true, parser: "collect" },
      { long: "--dns-option", key: "dnsOption", value: true, parser: "collect" },
      { long: "--dns-opt", key: "dnsOpt", value: true, listened: true },
      { long: "--add-host", key: "addHost", value: true, parser: "collect" },
      { short: "-p", long: "--publish", key: "publish", value: true, parser: "collect" },
      { short: "-P", long: "--publish-all", key: "publishAll" },
      { long: "--expose", key: "expose", value: true, parser: "collect" },
      { short: "-m", long: "--memory", key: "memory", value: true },
      { long: "--memory-swap", key: "memorySwap", value: true },
      { long: "--cpus", key: "cpus", value: true },
      { short: "-c", long: "--cpu-shares", key: "cpuShares", value: true },
      { long: "--pids-limit", key: "pidsLimit", value: true },
      { long: "--cpuset-cpus", key: "cpusetCpus", value: true },
      { long: "--cpuset-mems", key: "cpusetMems", value: true },
      { long: "--cpu-quota", key: "cpuQuota", value: true },
      { long: "--cpu-period", key: "cpuPeriod", value: true },
      { long: "--memory-reservation", key: "memoryReservation", value: true },
      { long: "--kernel-memory", key: "kernelMemory", value: true },
      { long: "--oom-kill-disable", key: "oomKillDisable" },
      { long: "--blkio-weight", key: "blkioWeight", value: true },
      { long: "--device-read-bps", key: "deviceReadBps", value: true, parser: "collect" },
      { long: "--device-write-bps", key: "deviceWriteBps", value: true, parser: "collect" },
      { long: "--device-read-iops", key: "deviceReadIops", value: true, parser: "collect" },
      { long: "--device-write-iops", key: "deviceWriteIops", value: true, parser: "collect" },
      { long: "--device-cgroup-rule", key: "deviceCgroupRule", value: true, parser: "collect" },
      { long: "--oom-score-adj", key: "oomScoreAdj", value: true },
      { long: "--cpu-rt-runtime", key: "cpuRtRuntime", value: true },
      { long: "--cpu-rt-period", key: "cpuRtPeriod", value: true },
      { long: "--cgroup-parent", key: "cgroupParent", value: true },
      { short: "-i", long: "--interactive", key: "interactive" },
      { short: "-t", long: "--tty", key: "tty" },
      { short: "-v", long: "--volume", key: "volume", value: true, parser: "collect" },
      { long: "--mount", key: "mount", value: true, parser: "collect" },
      { long: "--tmpfs", key: "tmpfs", value: true, parser: "collect" },
      { long: "--read-only", key: "readOnly" },
      { long: "--health-cmd", key: "healthCmd", value: true },
      { long: "--health-interval", key: "healthInterval", value: true, parser: "goDuration" },
      { long: "--health-timeout", key: "healthTimeout", value: true, parser: "goDuration" },
      { long: "--health-retries", key: "healthRetries", value: true, parser: "retries" },
      {
        long: "--health-start-period",
        key: "healthStartPeriod",
        value: true,
        parser: "goDuration",
      },
      {
        long: "--health-start-interval",
        key: "healthStartInterval",
        value: true,
        parser: "goDuration",
      },
      { long: "--no-healthcheck", key: "healthcheck", negate: true },
      { long: "--cap-add", key: "capAdd", value: true, parser: "collect" },
      { long: "--cap-drop", key: "capDrop", value: true, parser: "collect" },
      { long: "--privileged", key: "privileged" },
      { long: "--security-opt", key: "securityOpt", value: true, parser: "collect" },
      { long: "--device", key: "device", value: true, parser: "collect" },
      { long: "--ulimit", key: "ulimit", value: true, parser: "collect" },
      { long: "--userns", key: "userns", value: true },
      { long: "--init", key: "init" },
      { long: "--pull", key: "pull", value: true },
      { long: "--platform", key: "platform", value: true },
      { long: "--cidfile", key: "cidfile", value: true },
      { long: "--group-add", key: "groupAdd", value: true, parser: "collect" },
      { long: "--shm-size", key: "shmSize", value: true },
      { long: "--sysctl", key: "sysctl", value: true, parser: "collect" },
      { long: "--log-driver", key: "logDriver", value: true },
      { long: "--log-opt", key: "logOpt", value: true, parser: "collect" },
      { short: "-d", long: "--detach", key: "detach" },
      { short: "-a", long: "--attach", key: "attach", value: true, parser: "collect" },
    ],
  },
};
