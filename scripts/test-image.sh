#!/usr/bin/env bash
# Builds the image with buildah and boots it, offline from NVIDIA, Docker Hub and GitHub:
#   BASE_IMAGE  ← Debian bookworm (debootstrap minbase + python3), imported as a local image
#   node        ← a local image holding this machine's node and npm (and its CA bundle)
#   comfyui     ← test/fixtures/comfyui (the stand-in main.py)
#   filebrowser ← test/fixtures/filebrowser (the stand-in binary)
# The builder stage still installs from the npm registry (NPM_INSTALL, default `install`: `npm ci`
# refuses the lockfile behind a mirror that lacks other platforms' optional packages) and the
# final stage runs apt-get (Debian mirror).
# Then it runs the entrypoint under tini with `buildah run` (host network, chroot isolation) against
# a local model server and checks: supervisord brings up Redis, the board, the workers, FileBrowser
# and the stand-in ComfyUI; /status reaches ready; auth is enforced; ComfyUI listens on 127.0.0.1
# behind the login and Debian's chromium signs in on the board and ComfyUI ports; Phoenix runs as
# sduser and ComfyUI as comfy; a hostile custom node (test/fixtures/hostile-node), installed and
# imported as comfy, reads nothing of Phoenix's; SIGTERM stops it all, PARANOID_MODE's cleanup
# included, within Docker's 10-second grace. Needs root (buildah, debootstrap, chromium). Prints the
# time of each phase.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${PHOENIX_IMAGE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix-image-test}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDAH=(buildah --storage-driver vfs)
TAG=localhost/phoenix-test
WORK="$(mktemp -d /tmp/phoenix-image-test.XXXXXX)"
STARTED=$SECONDS
phase_start=$SECONDS

say() { printf '[test-image %4ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
phase() { say "$1 took $((SECONDS - phase_start))s"; phase_start=$SECONDS; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah with chroot isolation, debootstrap)"
# One image test at a time on a machine: they share buildah's storage, the tag and the cache.
exec 9>/tmp/phoenix-image-test.lock
if ! flock -n 9; then
  say "another image test is running; waiting for it"
  flock 9
fi
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing buildah and debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
fi

container=""
run_pid=""
tini_pid=""
model_server_pid=""

# Every process under $1, depth first. Chroot isolation shares the host's pid namespace.
descendants() {
  local pid
  for pid in $(pgrep -P "$1"); do echo "$pid"; descendants "$pid"; done
}

# The container's processes outlive a killed `buildah run`: stop them through tini, then kill.
stop_container() {
  [ -n "$tini_pid" ] && [ -d "/proc/$tini_pid" ] || return 0
  local left
  left=$(descendants "$tini_pid")
  kill -TERM "$tini_pid" 2>/dev/null || true
  timeout 30 tail --pid="$tini_pid" -f /dev/null || true
  for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
}

cleanup() {
  stop_container
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then kill -KILL "$run_pid" 2>/dev/null || true; fi
  if [ -n "$model_server_pid" ]; then kill "$model_server_pid" 2>/dev/null || true; fi
  if [ -n "$container" ]; then "${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true; fi
  # Keep the logs of the last run for a look after a failure.
  mkdir -p "$CACHE/last-run" && cp "$WORK"/*.log "$CACHE/last-run/" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- base image: Debian bookworm minbase + python3 ---------------------------------------------
mkdir -p "$CACHE"
# pip too: the nodes worker lists ComfyUI's packages with it before a node's install.py runs.
if [ ! -f "$CACHE/bookworm-minbase-pip.tar" ]; then
  say "debootstrap bookworm (minbase + python3, pip) from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-pip bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
  tar -C "$WORK/rootfs" -cf "$CACHE/bookworm-minbase-pip.tar" .
  rm -rf "$WORK/rootfs"
fi
ctr=$("${BUILDAH[@]}" from scratch)
"${BUILDAH[@]}" add "$ctr" "$CACHE/bookworm-minbase-pip.tar" / >/dev/null
"${BUILDAH[@]}" config --cmd /bin/bash "$ctr"
"${BUILDAH[@]}" commit -q "$ctr" "$TAG/base" >/dev/null
"${BUILDAH[@]}" rm "$ctr" >/dev/null
phase "base image"

# --- node stand-in: this machine's node and npm on the base ------------------------------------
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
ctr=$("${BUILDAH[@]}" from "$TAG/base")
"${BUILDAH[@]}" copy "$ctr" "$node_bin" /usr/local/bin/node >/dev/null
"${BUILDAH[@]}" copy "$ctr" "$npm_dir" /usr/local/lib/node_modules/npm >/dev/null
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
# The machine's CA bundle, so npm trusts whatever this machine trusts (a TLS-inspecting proxy too).
"${BUILDAH[@]}" copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/host-ca.crt >/dev/null
"${BUILDAH[@]}" config --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt "$ctr"
"${BUILDAH[@]}" commit -q "$ctr" "$TAG/node" >/dev/null
"${BUILDAH[@]}" rm "$ctr" >/dev/null
phase "node stand-in image ($("$node_bin" --version))"

# --- the image ---------------------------------------------------------------------------------
say "buildah build (Dockerfile, stand-ins for node, comfyui, filebrowser)"
"${BUILDAH[@]}" build --isolation chroot --network host \
  --build-arg BASE_IMAGE="$TAG/base" --build-arg NPM_INSTALL="${NPM_INSTALL:-install}" \
  --build-context node="docker-image://$TAG/node" \
  --build-context comfyui="$ROOT/test/fixtures/comfyui" \
  --build-context filebrowser="$ROOT/test/fixtures/filebrowser" \
  -f "$ROOT/Dockerfile" -t "$TAG/phoenix" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; fail "buildah build failed (log above)"; }
phase "image build"

# --- boot --------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
COMFY_PORT=$(free_port) BOARD_PORT=$(free_port) FB_PORT=$(free_port) MODEL_PORT=$(free_port) COMFY_INTERNAL_PORT=$(free_port)
WS="$WORK/workspace"
mkdir -p "$WS" "$WORK/models"

# A tiny LoRA-shaped safetensors file behind a local HTTP server, asked for by a manifest.
python3 - "$WORK/models/tiny-lora.safetensors" <<'PY'
import json, struct, sys
header = json.dumps({"lora_unet_x.lora_down.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
PY
sha=$(sha256sum "$WORK/models/tiny-lora.safetensors" | cut -d' ' -f1)
python3 -m http.server "$MODEL_PORT" --bind 127.0.0.1 --directory "$WORK/models" >"$WORK/model-server.log" 2>&1 &
model_server_pid=$!
cat >"$WS/manifest.toml" <<TOML
[models.loras.tiny]
source = "url"
url = "http://127.0.0.1:$MODEL_PORT/tiny-lora.safetensors"
sha256 = "$sha"
TOML
chmod 0644 "$WS/manifest.toml"

# --- isolation: a hostile custom node, served by the model server as a git repository ------------
# Its install.py and its import (test/fixtures/hostile-node/probe.py) try every read of Phoenix's
# secrets and state, and write what they got to ComfyUI's output folder.
mkdir -p "$WORK/hostile-src" "$WORK/models/git"
cp "$ROOT"/test/fixtures/hostile-node/*.py "$WORK/hostile-src/"
git -C "$WORK/hostile-src" init -q --initial-branch=main
git -C "$WORK/hostile-src" -c user.name=Fixture -c user.email=fixture@example.invalid add -A
git -C "$WORK/hostile-src" -c user.name=Fixture -c user.email=fixture@example.invalid commit -q -m hostile
git clone -q --bare "$WORK/hostile-src" "$WORK/models/git/Hostile.git"
git -C "$WORK/models/git/Hostile.git" update-server-info
ISOLATION_RUN_ENV=(-e COMFY_CUSTOM_NODE_GIT_URLS="http://127.0.0.1:$MODEL_PORT/git/Hostile.git" -e PARANOID_MODE=true)

PASSWORD=image-test-password
API_TOKEN=image-test-api-token-0123456789
container=$("${BUILDAH[@]}" from "$TAG/phoenix")
sduser_uid=$(grep '^sduser:' "$("${BUILDAH[@]}" mount "$container")/etc/passwd" | cut -d: -f3)
comfy_uid=$(grep '^comfy:' "$("${BUILDAH[@]}" mount "$container")/etc/passwd" | cut -d: -f3)
"${BUILDAH[@]}" umount "$container" >/dev/null
say "booting (ComfyUI :$COMFY_PORT, board :$BOARD_PORT, FileBrowser :$FB_PORT; sduser uid $sduser_uid)"
"${BUILDAH[@]}" run --isolation chroot --network host -v "$WS:/workspace" \
  -e COMFYUI_PORT="$COMFY_PORT" -e PHOENIX_PORT="$BOARD_PORT" -e FILEBROWSER_PORT="$FB_PORT" \
  -e COMFYUI_INTERNAL_PORT="$COMFY_INTERNAL_PORT" -e PHOENIX_API_TOKEN="$API_TOKEN" \
  -e PHOENIX_PASSWORD="$PASSWORD" -e FB_PASSWORD="$PASSWORD-fb" -e PROVISION_URL=/workspace/manifest.toml \
  -e TINI_SUBREAPER=1 "${ISOLATION_RUN_ENV[@]}" \
  "$container" -- tini -- /opt/phoenix/scripts/entrypoint.sh >"$WORK/boot.log" 2>&1 &
run_pid=$!
for _ in $(seq 100); do
  tini_pid=$(pgrep -n -f "^(/usr/bin/)?tini -- /opt/phoenix/scripts/entrypoint.sh" || true)
  [ -n "$tini_pid" ] && break
  sleep 0.1
done
[ -n "$tini_pid" ] || { tail -20 "$WORK/boot.log"; fail "cannot find tini's pid"; }

status() { curl -fsS -u "admin:$PASSWORD" "http://127.0.0.1:$BOARD_PORT/status"; }
deadline=$((SECONDS + 240))
until status 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["ready"] else 1)' 2>/dev/null; do
  kill -0 "$run_pid" 2>/dev/null || { tail -40 "$WORK/boot.log"; fail "the container exited before /status was ready"; }
  [ $SECONDS -lt $deadline ] || { tail -60 "$WORK/boot.log"; status || true; fail "/status not ready within 240s"; }
  sleep 1
done
phase "boot to ready"

# --- checks ------------------------------------------------------------------------------------
check() { if "$@"; then say "ok: ${CHECK}"; else fail "${CHECK}"; fi; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

CHECK="board answers 401 without auth"; check test "$(http_code "http://127.0.0.1:$BOARD_PORT/status")" = 401
CHECK="board answers 200 with auth"; check test "$(http_code -u "admin:$PASSWORD" "http://127.0.0.1:$BOARD_PORT/board/")" = 200
CHECK="/healthz answers without auth"; check test "$(http_code "http://127.0.0.1:$BOARD_PORT/healthz")" = 200
CHECK="ComfyUI's port answers 401 without auth"; check test "$(http_code "http://127.0.0.1:$COMFY_PORT/system_stats")" = 401
CHECK="stand-in ComfyUI answers /system_stats through the login"
check test "$(http_code -u "admin:$PASSWORD" "http://127.0.0.1:$COMFY_PORT/system_stats")" = 200
# `phoenix filebrowser` (src/commands/filebrowser.ts) counts only once src/cli.ts dispatches to it.
if grep -q "case 'filebrowser'" "$ROOT/src/cli.ts"; then
  CHECK="FileBrowser answers /health"
  check test "$(curl -fsS --retry 5 --retry-connrefused "http://127.0.0.1:$FB_PORT/health")" = '{"status": "OK"}'
  expected_programs=("phoenix filebrowser" "filebrowser -d")
else
  say "SKIP: FileBrowser checks: src/cli.ts has no 'filebrowser' command yet"
  expected_programs=()
fi
CHECK="the model was published on the volume (USE_VOLUME from the mount)"
check test -f "$WS/storage/models/loras/tiny-lora.safetensors"
CHECK="Redis listens on its unix socket"; check test -S "$WS/.phoenix/redis.sock"

# --- login on every port: ComfyUI behind Phoenix's login, a real browser ---------------------------
# Listening sockets on a port, as address:port from /proc/net/tcp (the container shares this network).
listeners() {
  python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
for line in open("/proc/net/tcp").readlines()[1:]:
    local, state = line.split()[1], line.split()[3]
    address, p = local.split(":")
    if state == "0A" and int(p, 16) == port:
        print(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
PY
}
CHECK="ComfyUI listens on 127.0.0.1:$COMFY_INTERNAL_PORT only"; check test "$(listeners "$COMFY_INTERNAL_PORT")" = 127.0.0.1
CHECK="the API token opens ComfyUI's port and the board"
check test "$(http_code -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$COMFY_PORT/system_stats")$(http_code -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$BOARD_PORT/status")" = 200200
CHECK="the session key is sduser's alone (mode 600)"; check test "$(stat -c '%a %u' "$WS/.phoenix/session.key")" = "600 $sduser_uid"
CHECK="no log line holds the API token"; check test "$(grep -c -- "$API_TOKEN" "$WORK/boot.log")" = 0
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# Two host names, as RunPod gives each port its own: the board on 127.0.0.1, ComfyUI on 127.0.0.2.
browser_login() {
  (cd "$ROOT" && PHOENIX_PASSWORD="$PASSWORD" node --import tsx test/browser/cli.ts \
    --board "http://127.0.0.1:$BOARD_PORT" --comfy "http://127.0.0.2:$COMFY_PORT")
}
CHECK="browser login: board, ComfyUI and its WebSocket, wrong password, sign-out"; check browser_login
# -------------------------------------------------------------------------------------------------

# Every process under tini, with its uid and umask.
procs="$WORK/procs.txt"
for pid in $(descendants "$tini_pid"); do
  [ -r "/proc/$pid/status" ] || continue
  printf '%s %s %s %s\n' "$pid" "$(awk '/^Uid:/{print $2}' "/proc/$pid/status")" \
    "$(awk '/^Umask:/{print $2}' "/proc/$pid/status")" "$(tr '\0' ' ' <"/proc/$pid/cmdline")"
done >"$procs"
say "processes under tini (pid uid umask command):"
sed 's/^/    /' "$procs"
for name in supervisord redis-server "phoenix board" "phoenix workers" main.py "${expected_programs[@]}"; do
  CHECK="$name runs"; check grep -q -- "$name" "$procs"
done
# ComfyUI runs as comfy with umask 027 (its outputs are readable by Phoenix's group), below the sudo
# that started it (real uid sduser, the same umask); FileBrowser has umask 027 (its uploads are
# readable by ComfyUI); everything else runs as sduser with umask 077.
comfyui='$4 != "sudo" && /main\.py/'
CHECK="ComfyUI runs as comfy"; check awk -v u="$comfy_uid" "$comfyui"' { n++; if ($2 != u) bad = 1 } END { exit bad || !n }' "$procs"
CHECK="every other process runs as sduser"; check awk -v u="$sduser_uid" "!($comfyui)"' && $2 != u { bad = 1 } END { exit bad }' "$procs"
CHECK="umask 027 for ComfyUI and FileBrowser, 077 for the rest"
check awk '{ want = /main\.py|filebrowser/ ? "0027" : "0077" } $3 != want { bad = 1 } END { exit bad }' "$procs"

# --- isolation checks ------------------------------------------------------------------------------
hostile_result() { python3 - "$WS/ComfyUI/output/hostile-$1.json" "$comfy_uid" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
got = {k: a["detail"] for k, a in r["forbidden"].items() if a["ok"]}
environs = [k for k in r["forbidden"] if k.startswith("environ of")]
for name in ("phoenix workers", "phoenix board", "redis-server", "supervisord"):
    assert any(name in k for k in environs), f"the probe did not find {name}: {environs}"
for key in ("redis socket", "supervisord socket", "record key", "filebrowser database", "sudo"):
    assert key in r["forbidden"], key
assert any(k.startswith("record ") for k in r["forbidden"]), "no record probed"
assert r["uid"] == int(sys.argv[2]), f"ran as uid {r['uid']}"
assert not got, f"the hostile node got: {got}"
assert r["allowed"].get("write in output", {}).get("ok"), r["allowed"]
# The model is published by the time ComfyUI imports the node; install.py may run before that.
if sys.argv[1].endswith("import.json"):
    assert any(k.startswith("read model ") and a["ok"] for k, a in r["allowed"].items()), r["allowed"]
print(f"{len(r['forbidden'])} reads refused ({len(environs)} process environments)")
PY
}
for phase in install import; do
  CHECK="the hostile node's $phase got nothing of Phoenix's"
  deadline=$((SECONDS + 30))
  until [ -f "$WS/ComfyUI/output/hostile-$phase.json" ] || [ $SECONDS -ge $deadline ]; do sleep 1; done
  check hostile_result "$phase"
done
# The same probe as sduser, the user nodes ran as before COMFYUI_USER: it does find the secrets.
cp "$ROOT/test/fixtures/hostile-node/probe.py" "$WORK/probe.py"
chmod 0711 "$WORK"
chmod 0644 "$WORK/probe.py"
setpriv --reuid="$sduser_uid" --regid="$sduser_uid" --clear-groups /usr/bin/python3 "$WORK/probe.py" "$WS/ComfyUI" >"$WORK/probe-as-sduser.json" || true
CHECK="as sduser the probe reads the workers' environment, the Redis socket and the record key"
check python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["forbidden"]
assert any("phoenix workers" in k and a["ok"] for k, a in r.items()), r
assert r["redis socket"]["ok"] and r["record key"]["ok"], r
' "$WORK/probe-as-sduser.json"

# --- privacy (PRIVACY_ENABLED=true in the image) -------------------------------------------------
# The egress proxy runs in the workers and is what ComfyUI gets as HTTP(S)_PROXY. Under buildah's
# chroot tini is not PID 1, so the entrypoint sets no firewall: enforcement must say "proxy".
privacy_json="$WORK/privacy.json"
curl -fsS -u "admin:$PASSWORD" "http://127.0.0.1:$BOARD_PORT/api/privacy" >"$privacy_json"
CHECK="privacy is on, enforced by the proxy only"
check python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); sys.exit(0 if p["enabled"] and p["enforcement"]=="proxy" and p["proxy"] else 1)' "$privacy_json"
egress_proxy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["proxy"])' "$privacy_json")
CHECK="ComfyUI was started with the proxy and the telemetry switches"
# The stand-in records its start beside main.py, or in user/ when it runs as comfy and may not write there.
runs="$WS/ComfyUI/standin-runs.jsonl"
[ -f "$runs" ] || runs="$WS/ComfyUI/user/standin-runs.jsonl"
check python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).readlines()[-1])["env"]; sys.exit(0 if e.get("HTTPS_PROXY")==sys.argv[2] and e.get("DO_NOT_TRACK")=="1" else 1)' \
  "$runs" "$egress_proxy"
CHECK="the proxy refuses a telemetry host (403)"
check test "$(http_code --proxy "$egress_proxy" http://api.mixpanel.com/track)" = 403
CHECK="the blocked connection shows in /status and on the privacy page"
check sh -c 'curl -fsS -u "admin:$1" "http://127.0.0.1:$2/status" | python3 -c "import json,sys; p=json.load(sys.stdin)[\"privacy\"]; sys.exit(0 if p[\"blocked\"]>=1 and p[\"recent\"][0][\"host\"]==\"api.mixpanel.com\" else 1)" \
  && curl -fsS -u "admin:$1" "http://127.0.0.1:$2/privacy" | grep -q "<td>api.mixpanel.com</td>"' _ "$PASSWORD" "$BOARD_PORT"

# --- stop ----------------------------------------------------------------------------------------
phase_start=$SECONDS
kill -TERM "$tini_pid"
code=0
if ! timeout 40 tail --pid="$run_pid" -f /dev/null; then fail "still running 40s after SIGTERM"; fi
wait "$run_pid" || code=$?
run_pid=""
tini_pid=""
stop_seconds=$((SECONDS - phase_start))
phase "stop after SIGTERM"
CHECK="stopped within Docker's 10-second grace, PARANOID_MODE's cleanup included (${stop_seconds}s)"; check test "$stop_seconds" -lt 10
CHECK="PARANOID_MODE removed the queue state and FileBrowser's database, kept the model and its record"
check test ! -e "$WS/.phoenix/appendonlydir" -a ! -e "$WS/.phoenix/filebrowser.db" -a -f "$WS/storage/models/loras/tiny-lora.safetensors" -a -f "$WS/storage/models/.phoenix-verified.json"
CHECK="exit status after SIGTERM is 0 (was $code)"; check test "$code" = 0
left=$(cut -d' ' -f1 "$procs" | while read -r pid; do [ -d "/proc/$pid" ] && echo "$pid"; done || true)
CHECK="no process is left"; check test -z "$left"

say "PASS in $((SECONDS - STARTED))s"
