#!/bin/sh
# Loads Phoenix's egress firewall (config/privacy-firewall.nft) for ComfyUI's user and notes the
# uid it applies to in a marker that only root can write, which Phoenix (not root) reads to report
# enforcement "firewall". Run as root, before privileges are dropped (scripts/entrypoint.sh).
# usage: privacy-firewall.sh USER RULESET MARKER
# Exits non-zero, leaving no marker, when the rules cannot be set (no CAP_NET_ADMIN, no nft).
set -eu
user="$1" ruleset="$2" marker="$3"
rm -f "$marker"
uid=$(id -u "$user")
nft -D comfy_user="$uid" -f "$ruleset"
mkdir -p "$(dirname "$marker")"
chmod 0755 "$(dirname "$marker")"
printf '%s\n' "$uid" >"$marker"
chmod 0644 "$marker"
