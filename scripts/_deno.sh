# Sourced by the repository's scripts: sets DENO to a Deno 2.9.6 executable. It uses $DENO when
# set, else `deno` from PATH, else installs the pinned version from npm into .ci/.tools (as
# .ci/run does), so the scripts also run on a machine with only Node.js and npm. A real
# executable (not `npx`) keeps the PIDs the scripts stop those of the Deno processes.
# shellcheck shell=bash
koi_find_deno() {
  local root=$1
  if [ -n "${DENO:-}" ]; then return 0; fi
  if command -v deno >/dev/null 2>&1; then
    DENO=deno
    return 0
  fi
  local tools="$root/.ci/.tools"
  if [ ! -x "$tools/node_modules/.bin/deno" ]; then
    echo "deno not on PATH: installing deno@2.9.6 from npm into $tools" >&2
    npm install --no-save --no-audit --no-fund --prefix "$tools" deno@2.9.6 >/dev/null
  fi
  DENO="$tools/node_modules/.bin/deno"
}
