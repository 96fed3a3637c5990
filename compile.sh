#!/usr/bin/env bash
# Builds ./tsbox, one executable, with `deno compile`.
#
# `deno compile` needs Deno's base runtime (denort) of the same version as the deno doing the
# compiling. It downloads it unless DENORT_BIN points at one. Where neither works (an offline
# machine), this script says so and leaves ./tsbox as a small launcher that runs the same code
# (main.ts) with the installed deno, so that `./tsbox ...` works everywhere.
#
# The npm packages (and compiled modules) go to .deno/ in this checkout, not to the per-user
# cache under $HOME: the launcher points Deno there and only reads it (--cached-only), so any
# user can run ./tsbox, also one whose HOME is not writable or missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
out="$here/tsbox"
version="$(deno --version | head -1 | awk '{print $2}')"
export DENO_DIR="$here/.deno"

# Every entry point, the ones started as workers or subprocesses too, so that the cache holds
# their transpiled code as well and a user who cannot write to it does not redo that each time.
# main.ts loads the CLI's modules by computed names (so that start-up does not read them all):
# they are entry points here, and --include below, for the same reason.
deno install --quiet --entrypoint main.ts mod.ts src/net/proxy_worker.ts \
  src/container/supervisor_main.ts src/container/rmtree_main.ts src/cli/mod.ts src/cli/hot.ts \
  src/image/unpack_worker.ts src/runc/main.ts src/runc/create.ts src/runc/exec.ts src/runc/info.ts \
  src/runc/lifecycle.ts src/runc/query.ts >/dev/null
# Detached supervisors run from a bundle of their sources (src/container/supervisor_bundle.ts):
# made now, so that the first ones do not run from the sources while it is being made.
deno run -A --quiet src/container/supervisor_bundle_build.ts ||
  echo "compile.sh: no supervisor bundle (supervisors run from the sources)" >&2

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# tsbox's OCI runtime under runc's name for tools that take one executable path (podman
# --runtime, containerd's BinaryName): `tsbox-runc ARGS` is `tsbox runc ARGS`.
cat >"$here/tsbox-runc" <<'WRAPPER'
#!/bin/sh
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/tsbox" runc "$@"
WRAPPER
chmod 755 "$here/tsbox-runc"
# Modules loaded only as workers or by computed names are not found by the module graph walk:
# name them.
if deno compile --quiet -A --include src/net/proxy_worker.ts --include src/image/unpack_worker.ts \
  --include src/cli/mod.ts --include src/cli/hot.ts --include src/container/rmtree_main.ts \
  --include src/runc/main.ts --include src/runc/create.ts --include src/runc/exec.ts \
  --include src/runc/info.ts --include src/runc/lifecycle.ts \
  --include src/runc/query.ts --output "$out" main.ts >"$log" 2>&1; then
  echo "built $out (deno compile, Deno $version)"
  exit 0
fi

if [ -n "${DENORT_BIN:-}" ]; then
  echo "compile.sh: deno compile failed even with DENORT_BIN=$DENORT_BIN:" >&2
  sed -n '1,5p' "$log" >&2
  exit 1
fi

cat >&2 <<MSG
compile.sh: deno compile could not fetch its base runtime (denort $version); this machine is
probably offline. To build a real single executable, download denort-$(uname -m)-unknown-linux-gnu
for Deno $version elsewhere and run: DENORT_BIN=/path/to/denort ./compile.sh
Writing ./tsbox as a launcher that runs main.ts with the installed deno instead.
MSG
cat >"$out" <<LAUNCHER
#!/bin/sh
# tsbox launcher written by compile.sh (deno compile was not possible here). Deno's cache is the
# one compile.sh filled in the checkout, only read: no per-user cache is needed.
DENO_DIR="$here/.deno" exec deno run -A --quiet --no-prompt --cached-only "$here/main.ts" "\$@"
LAUNCHER
chmod 755 "$out"
# Transpile once now, as the installer, who can write the cache.
"$out" --version >/dev/null
chmod -R a+rX "$DENO_DIR"
echo "built $out (launcher)"
