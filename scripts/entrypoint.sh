#!/bin/sh
# The image's entrypoint, under tini: prepares $WORKSPACE, then hands the container to supervisord
# (supervisord.conf), which runs Redis, the board, the workers, the producer and FileBrowser.
# Started as root it gives sduser what Phoenix writes and drops to sduser; started as any other
# user it stays that user.
set -eu
umask 077
ulimit -c 0
trap 'echo "phoenix: stopped while preparing the workspace" >&2; exit 143' TERM INT

export WORKSPACE="${WORKSPACE:-/workspace}"
COMFYUI_DIR="${COMFYUI_DIR:-$WORKSPACE/ComfyUI}"
RUN_AS=sduser

# A volume mounted at $WORKSPACE (RunPod's pod or network volume) keeps models across pods, unless
# PERSISTENT_STORAGE or USE_VOLUME says otherwise.
if [ -z "${PERSISTENT_STORAGE:-}" ] && [ -z "${USE_VOLUME:-}" ]; then
  if mountpoint -q "$WORKSPACE" 2>/dev/null; then USE_VOLUME=true; else USE_VOLUME=false; fi
  export USE_VOLUME
fi

# Privacy: with PRIVACY_ENABLED (the image's default) and COMFYUI_USER, nftables rules leave that
# user only loopback, where Phoenix's egress proxy listens. Only root may set them, so here; only
# where the container has its own init (PID 1 is tini), so a run sharing the host's network
# namespace (buildah run, a chroot) never changes the host's firewall. Without CAP_NET_ADMIN the
# rules fail to load and Phoenix reports enforcement "proxy".
privacy_firewall() {
  case "$(printf '%s' "${PRIVACY_ENABLED:-false}" | tr 'A-Z' 'a-z')" in true | 1 | yes | on) ;; *) return 0 ;; esac
  case "$(printf '%s' "${MONITORING_ONLY:-false}" | tr 'A-Z' 'a-z')" in true | 1 | yes | on) return 0 ;; esac
  rm -f /run/phoenix/privacy-firewall
  [ -n "${COMFYUI_USER:-}" ] || return 0
  if [ "$PPID" != 1 ]; then
    echo "phoenix: privacy: not the container's own init (PID 1); no firewall rules, the proxy only" >&2
    return 0
  fi
  if ! /opt/phoenix/scripts/privacy-firewall.sh "$COMFYUI_USER" /opt/phoenix/config/privacy-firewall.nft /run/phoenix/privacy-firewall 2>/tmp/phoenix-firewall.err; then
    echo "phoenix: privacy: cannot set firewall rules ($(head -1 /tmp/phoenix-firewall.err)); the proxy only" >&2
  fi
  rm -f /tmp/phoenix-firewall.err
}

mkdir -p "$WORKSPACE"
DROP=
if [ "$(id -u)" = 0 ]; then
  DROP="setpriv --reuid=$RUN_AS --regid=$RUN_AS --init-groups --"
  # The volume's root belongs to root on RunPod. Give sduser the root and Phoenix's own folders,
  # touching only entries that are not sduser's yet, so a large model store is not rewritten.
  chown "$RUN_AS:$RUN_AS" "$WORKSPACE"
  storage="${PERSISTENT_STORAGE:-none}"
  [ "$storage" = none ] && storage="$WORKSPACE/storage"
  for dir in "$WORKSPACE/.phoenix" "$COMFYUI_DIR" "$storage"; do
    if [ -e "$dir" ]; then find "$dir" ! -user "$RUN_AS" -exec chown -h "$RUN_AS:$RUN_AS" {} +; fi
  done
  privacy_firewall
  # supervisord reopens /dev/stdout for every program's log: let sduser open the container's output.
  chown "$RUN_AS" /proc/self/fd/1 /proc/self/fd/2 2>/dev/null || true
  export HOME="/home/$RUN_AS" USER="$RUN_AS" LOGNAME="$RUN_AS"
fi

$DROP mkdir -p "$WORKSPACE/.phoenix"
if [ ! -f "$COMFYUI_DIR/main.py" ]; then
  echo "phoenix: copying ComfyUI into $COMFYUI_DIR"
  $DROP mkdir -p "$COMFYUI_DIR"
  $DROP cp -a /opt/ComfyUI/. "$COMFYUI_DIR/"
fi

trap - TERM INT
exec $DROP supervisord -c /opt/phoenix/supervisord.conf
