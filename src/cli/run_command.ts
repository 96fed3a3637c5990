/**
 * `tsbox run [OPTIONS] IMAGE [COMMAND [ARG...]]`, like `docker run`. With `-d` a detached
 * supervisor takes the container and the id is printed; without, tsbox is the supervisor: it
 * forwards signals, waits, cleans up and exits with the container's code.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { globalsOf } from "./globals.ts";
import { HOT_ACTIONS } from "./hot_actions.ts";
import { collect, envFile, goDuration, label, networkMode, retries } from "./arg_parsers.ts";

export { EnvFileError } from "./arg_parsers.ts";

/** Defines `run` on the program. */
export function defineRunCommand(program: Command): void {
  addRunOptions(
    program.command("run")
      .description("Create and run a new container from an image")
      .argument("<image>", "image name or id")
      .argument("[command...]", "command and arguments (default: the image's)")
      .passThroughOptions(),
  )
    .option("-d, --detach", "run in the background and print the container id")
    .option("-a, --attach <stream>", "attach to STDIN, STDOUT or STDERR (repeatable)", collect)
    .action(async (image, command, flags, cmd) => {
      const { createLine } = await import("./create_line.ts");
      const createCommand = createLine(cmd, image, command);
      await HOT_ACTIONS.run(globalsOf(cmd), [image, command], { ...flags, createCommand });
    });
}

/** Adds the flags `run` and `create` share (everything but `-d`). */
export function addRunOptions<A extends unknown[]>(cmd: Command<A>): Command<A> {
  // `--net` is docker's other name of `--network`: the one given last wins, as with pflag.
  cmd.on("option:net", (value: string) => cmd.setOptionValue("network", value));
  // `--dns-opt` is docker's other name of `--dns-option`: both add to one list, in order.
  cmd.on("option:dns-opt", (value: string) => {
    const list = (cmd.getOptionValue("dnsOption") as string[] | undefined) ?? [];
    cmd.setOptionValue("dnsOption", [...list, value]);
  });
  return cmd
    .option("--rm", "remove the container when it exits")
    .option("--restart <policy>", "no, on-failure[:max-retries], always, unless-stopped")
    .option("--stop-signal <signal>", "signal to stop the container (default: the image's)")
    .option("--stop-timeout <seconds>", "seconds to wait before killing on stop (default 10)")
    .option("--name <name>", "assign a name to the container")
    .option("-h, --hostname <name>", "container host name (default: the short id)")
    .option("-e, --env <NAME[=value]>", "set an environment variable (repeatable)", collect)
    .option("--env-file <file>", "read environment variables from a file (repeatable)", envFile)
    .option("-l, --label <key[=value]>", "set metadata on the container (repeatable)", label)
    .option(
      "--label-file <file>",
      "read labels from a file of KEY=VALUE lines (repeatable)",
      collect,
    )
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user[:group]>", "user name or uid, optionally with a group or gid")
    .option("--entrypoint <cmd>", "override the image's entrypoint")
    .addOption(
      new Option(
        "--network <mode>",
        "network: bridge (the default: as root a bridge, rootless slirp4netns or pasta), NAME " +
          "(a user network), slirp4netns, pasta, private (own namespace with lo only), none, " +
          "host, container:NAME",
      ).argParser(networkMode).default("default"),
    )
    .addOption(
      new Option("--net <mode>", "docker's other spelling of --network").argParser(
        networkMode,
      ).hideHelp(),
    )
    // Namespace modes (src/container/namespaces.ts checks them with docker's messages).
    .option("--ipc <mode>", "IPC namespace: shareable (default), private, host, container:NAME")
    .option("--pid <mode>", "PID namespace: host, container:NAME (default: its own)")
    .option("--uts <mode>", "UTS namespace: host (default: its own)")
    .option("--cgroupns <mode>", "cgroup namespace: private (default), host")
    .option("--ip <address>", "IPv4 address on a user network (default: the next free one)")
    .option("--ip6 <address>", "IPv6 address on a user network made with --ipv6")
    .option("--network-alias <name>", "another name on a user network (repeatable)", collect)
    .option("--dns <ip>", "a DNS server (repeatable)", collect)
    .option("--dns-search <domain>", "a DNS search domain (repeatable)", collect)
    .option("--dns-option <option>", "a resolver option (repeatable)", collect)
    .addOption(new Option("--dns-opt <option>", "docker's other name of --dns-option").hideHelp())
    .option("--add-host <name:ip>", "an /etc/hosts entry; ip may be host-gateway", collect)
    .option(
      "-p, --publish <[ip:]host:container[/proto]>",
      "publish a container's port to the host (repeatable)",
      collect,
    )
    .option("-P, --publish-all", "publish every exposed port on an ephemeral host port")
    .option("--expose <port[/proto]>", "expose a port or a range of ports (repeatable)", collect)
    .option("-m, --memory <bytes>", "memory limit (e.g. 32m)")
    .option("--memory-swap <bytes>", "memory plus swap limit; -1 for unlimited")
    .option("--cpus <n>", "number of CPUs (e.g. 0.5)")
    .option("-c, --cpu-shares <n>", "CPU shares (relative weight)")
    .option("--pids-limit <n>", "limit on the number of processes")
    // Limits of src/container/extra_limits.ts (checked there with docker's messages).
    .option("--cpuset-cpus <list>", "CPUs the container may run on (0-3, 0,1)")
    .option("--cpuset-mems <list>", "memory nodes the container may use (0-3, 0,1)")
    .option("--cpu-quota <us>", "CPU CFS quota in microseconds per period (-1: none)")
    .option("--cpu-period <us>", "CPU CFS period in microseconds")
    .option("--memory-reservation <bytes>", "memory soft limit")
    .option("--kernel-memory <bytes>", "kernel memory limit (deprecated: ignored, as docker)")
    .option("--oom-kill-disable", "disable the OOM killer")
    .option("--blkio-weight <n>", "block IO weight, 10 to 1000 (0: none)")
    .option("--device-read-bps <path:rate>", "limit reads from a device, bytes/s", collect)
    .option("--device-write-bps <path:rate>", "limit writes to a device, bytes/s", collect)
    .option("--device-read-iops <path:rate>", "limit reads from a device, IO/s", collect)
    .option("--device-write-iops <path:rate>", "limit writes to a device, IO/s", collect)
    .option("--device-cgroup-rule <rule>", "allow devices: 'c 1:3 rwm' (repeatable)", collect)
    .option("--oom-score-adj <n>", "OOM score adjustment of the container, -1000 to 1000")
    .option("--cpu-rt-runtime <us>", "real-time runtime (not supported by tsbox)")
    .option("--cpu-rt-period <us>", "real-time period (not supported by tsbox)")
    .option("--cgroup-parent <path>", "cgroup under which the container's cgroup is made")
    .option("-i, --interactive", "keep stdin open")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("-v, --volume <host:container[:ro]>", "bind-mount a host path (repeatable)", collect)
    .option("--mount <spec>", "type=bind|tmpfs,source=...,target=...[,readonly]", collect)
    .option("--tmpfs <path[:options]>", "mount a tmpfs (repeatable)", collect)
    .option("--read-only", "mount the root filesystem read-only")
    // Health (src/container/health.ts): docker's defaults 30s, 30s, 3 retries, 0s, 5s.
    .option("--health-cmd <command>", "command to run to check health (through /bin/sh -c)")
    .option("--health-interval <duration>", "time between running the check (ms|s|m|h)", goDuration)
    .option("--health-timeout <duration>", "maximum time to allow one check to run", goDuration)
    .option("--health-retries <n>", "consecutive failures needed to report unhealthy", retries)
    .option("--health-start-period <duration>", "start period: failures do not count", goDuration)
    .option(
      "--health-start-interval <duration>",
      "time between running the check during the start period",
      goDuration,
    )
    .option("--no-healthcheck", "disable any container-specified HEALTHCHECK")
    .option("--cap-add <cap>", "add a Linux capability, or ALL (repeatable)", collect)
    .option("--cap-drop <cap>", "drop a Linux capability, or ALL (repeatable)", collect)
    .option("--privileged", "all capabilities and devices, no masks, no seccomp")
    .option(
      "--security-opt <opt>",
      "no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json (repeatable)",
      collect,
    )
    .option("--device <dev>", "add a host device: /dev/X[:/dev/Y][:rwm] (repeatable)", collect)
    .option("--ulimit <limit>", "set an rlimit: NAME=SOFT[:HARD] (repeatable)", collect)
    .option("--userns <mode>", "host: opt out of --userns-remap")
    // --init, --pull, --platform, --cidfile, --group-add, --shm-size, --sysctl, --log-opt
    .option("--init", "run an init (catatonit) as PID 1 that reaps zombies and forwards signals")
    .option("--pull <policy>", "pull the image before running: always, missing (default), never")
    .option("--platform <os/arch>", "the image's platform (only the host's can run)")
    .option("--cidfile <file>", "write the container id to a file (refused if it exists)")
    .option("--group-add <group>", "add a supplementary group: name or gid (repeatable)", collect)
    .option("--shm-size <bytes>", "size of /dev/shm (default 64m)")
    .option("--sysctl <key=value>", "set a namespaced kernel parameter (repeatable)", collect)
    .option("--log-driver <driver>", "json-file (default), local, or none (no logs kept)")
    .option(
      "--log-opt <key=value>",
      "json-file log options: max-size=SIZE, max-file=N (repeatable)",
      collect,
    ) as unknown as Command<A>;
}
