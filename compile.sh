#!/usr/bin/env bash
# Builds ./tsbox, one executable, with `deno compile`.
#
# `deno compile` needs Deno's base runtime (denort) of the same version as the deno doing the
# compiling. It downloads it unless DENORT_BIN points at one. Where neither works (an offline
# machine), this script says so and leaves ./tsbox as a small launcher that runs the same code
# (main.ts) with the installed deno, so that `./tsbox ...` works everywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
out="$here/tsbox"
version="$(deno --version | head -1 | awk '{print $2}')"

deno install --quiet --entrypoint main.ts mod.ts >/dev/null # caches npm packages for both paths

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Modules loaded only as workers are not found by the module graph walk: name them.
if deno compile --quiet -A --include src/net/proxy_worker.ts --output "$out" main.ts >"$log" 2>&1; then
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
# tsbox launcher written by compile.sh (deno compile was not possible here).
exec deno run -A --quiet --no-prompt "$here/main.ts" "\$@"
LAUNCHER
chmod 755 "$out"
echo "built $out (launcher)"
