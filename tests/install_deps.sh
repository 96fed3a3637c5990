#!/usr/bin/env bash
# Installs what the tsbox test suite needs on Debian 12 (run as root; node/npm present).
# Idempotent: installs only what is missing, runs apt-get update at most once.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

DENO_VERSION=2.9.6
# Everything a test runs: a missing tool fails its test (or shows as skipped in .ci/run), never
# a silent pass. binutils: `as`/`objcopy` re-check the clone stub (ffi/clone_test.ts); tmux: the
# terminal tests; uidmap/passwd: the rootless tests (newuidmap, useradd); util-linux/mount:
# unshare, setpriv, setsid, mount/umount in tests and their cleanup; catatonit: `run --init`;
# libnftables1 (tsbox's firewall) and nftables (tests look at the ruleset); aardvark-dns: names on
# user networks (tests/network_test.ts); passt (pasta) and slirp4netns: rootless networks
# (tests/rootless_network_test.ts); docker-compose: the Engine API driven by compose 1.29
# (tests/api_compose_test.ts); redis-server: the redis image the API tests build from Debian's
# binary (tests/api_redis.ts); containerd (`containerd`, `ctr`, the runc shim): tsbox's OCI
# runtime under containerd (tests/oci_containerd_test.ts starts its own, on its own socket);
# openssh-client, gcc and libc6-dev: build --ssh against a real ssh-agent, listed by a static
# helper the test compiles (tests/build_ssh_test.ts); git: ADD of a git repository
# (tests/build_add_git_test.ts); netavark: podman's own network under tsbox's OCI runtime
# (tests/oci_podman_test.ts, -p); containernetworking-plugins: the CNI plugins of the CRI pod
# (tests/oci_cri_test.ts); qemu-user-static: arm64 RUN steps and containers through binfmt_misc
# (tests/build_platforms_test.ts).
PACKAGES=(docker-registry skopeo busybox-static nginx umoci apache2-utils python3 tmux uidmap
  podman crun runc curl tar iproute2 binutils util-linux mount passwd catatonit zsh fish
  nftables libnftables1 aardvark-dns passt slirp4netns docker.io docker-compose
  redis-server containerd openssh-client gcc libc6-dev git
  netavark containernetworking-plugins qemu-user-static)
# Installed as packages, these start system services that would hold ports the tests use.
# docker.io is there for its client alone (tests/api_test.ts drives tsbox's Engine API with
# it): its dockerd (and docker.socket, which would start it) must never run beside tsbox. The
# tests start containerd themselves, each on its own socket and dirs: the system's is not needed.
SERVICES=(docker-registry nginx docker.socket docker redis-server containerd)

log() { echo "install_deps: $*"; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root" >&2
  exit 1
fi

# --- Deno from npm (JSR and GitHub downloads are not reachable from our machines) ---
if ! deno --version 2>/dev/null | grep -q "^deno ${DENO_VERSION} "; then
  log "installing deno ${DENO_VERSION} from npm"
  npm install -g --silent --no-fund --no-audit "deno@${DENO_VERSION}" >/dev/null
  PATH="$(npm prefix -g)/bin:$PATH"
  deno --version | head -1
fi

# --- Debian packages ---
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  # policy-rc.d 101 = "do not start services from maintainer scripts", honoured by
  # invoke-rc.d and deb-systemd-invoke with or without systemd.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  trap '[ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
fi

# --- stop and disable the services the packages ship (they may predate this script) ---
for s in "${SERVICES[@]}"; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  else
    if [ -x "/etc/init.d/$s" ]; then
      "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null; then
      update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
  fi
done

# --- /dev/net/tun as Debian's udev leaves it (0666): rootless pasta/slirp4netns open it inside
# the container's namespaces; some machine images create it 0600, which limits it to root ---
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  log "chmod 0666 /dev/net/tun"
  chmod 0666 /dev/net/tun
fi

# --- arm64 emulation: binfmt_misc mounted and qemu-aarch64 registered with the F flag (the kernel
# opens the interpreter at registration, so an arm64 program runs inside a container's mount
# namespace, where /usr/libexec/qemu-binfmt does not exist). Debian registers it through
# systemd-binfmt or binfmt-support at boot; machines without either get it here. ---
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
  log "mounting binfmt_misc at $BINFMT"
  mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
  log "registering qemu-aarch64 (binfmt_misc)"
  cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT/register"
fi
if ! grep -q '^flags: .*F' "$BINFMT/qemu-aarch64"; then
  log "qemu-aarch64 is registered without the F flag: containers cannot reach its interpreter" >&2
  exit 1
fi

# --- the arm64 test image's busybox: Debian's busybox-static for arm64, kept as its .deb (the
# tests extract it with dpkg-deb; they never reach the network) ---
ARM64_DEB_DIR=/var/cache/tsbox-tests
if ! ls "$ARM64_DEB_DIR"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
  log "downloading busybox-static:arm64 to $ARM64_DEB_DIR"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  apt-get update -qq
  mkdir -p "$ARM64_DEB_DIR"
  (cd "$ARM64_DEB_DIR" && apt-get download -qq -o APT::Sandbox::User=root busybox-static:arm64)
fi

log "ok (deno $(deno --version | head -1 | cut -d' ' -f2); ${#missing[@]} package(s) installed)"
