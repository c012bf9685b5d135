#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for Phoenix's demo and tests: the system
# packages (redis-server and redis-cli, git, python3 with PyYAML, supervisor, aria2, curl, openssl,
# iproute2, nftables; with --tests also Debian's chromium, for the browser login test) and the npm
# dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
# redis-cli builds the Redis Cluster of the fleet tests (`redis-cli --cluster create`).
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
command -v supervisord >/dev/null || need+=(supervisor)
command -v aria2c >/dev/null || need+=(aria2)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
# The privacy tests: network namespaces (ip) and nftables rules by user (nft).
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
# The browser login test drives Debian's chromium (playwright-core does not download its own).
if [ "${1:-}" = --tests ] && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
# ComfyUI reads extra_model_paths.yaml with PyYAML; the tests read Phoenix's file the same way.
command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lockfile.
# npm 11's `npm ci` insists on lock entries for every platform's optional packages (rollup's native
# builds); where the registry lacks some of them it refuses the lock, and `npm install` (same locked
# versions) does the job instead.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error 2>/tmp/phoenix-npm-ci.log; then
    grep -m1 -E 'Missing: .* from lock file' /tmp/phoenix-npm-ci.log || tail -3 /tmp/phoenix-npm-ci.log
    echo "setup: npm ci refused the lock file; installing the locked versions with npm install"
    npm install --no-audit --no-fund --loglevel=error
  fi
fi
