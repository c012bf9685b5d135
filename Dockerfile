# syntax=docker/dockerfile:1.7
# Phoenix's pod image: ComfyUI on NVIDIA's PyTorch build, provisioned by Phoenix under supervisord.
# ARG defaults mirror config/versions.conf (test/image/pins.test.ts keeps them equal); the bake file
# and .github/workflows/image.yml pass that file's values explicitly.
#
# Stages named node, comfyui and filebrowser are the image's outside inputs. A build can replace any
# of them with --build-context (scripts/test-image.sh does, to build offline with stand-ins):
#   node        an image with the node binary at /usr/local/bin/node (npm too, for the builder)
#   comfyui     a directory holding a ComfyUI checkout at its root (main.py, …)
#   filebrowser a directory holding the `filebrowser` executable at its root

ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.06-py3
ARG NODE_VERSION=24
ARG COMFYUI_REF=v0.8.1
ARG FILEBROWSER_VERSION=v2.63.23
ARG FILEBROWSER_SHA256=b14db2bb8033caa3f80205eb6578b2ed0744ebd9e716b790bc4a9703ce909e88

FROM node:${NODE_VERSION}-bookworm-slim AS node

# TypeScript → dist/, then production dependencies only.
FROM node AS builder
# `ci` everywhere but behind a registry mirror that lacks other platforms' optional packages
# (npm ci then finds them missing from the lockfile); scripts/test-image.sh builds on one.
ARG NPM_INSTALL=ci
WORKDIR /opt/phoenix
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ${NPM_INSTALL} --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && chmod 0755 dist/cli.js

FROM debian:bookworm-slim AS comfyui-git
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ARG COMFYUI_REF
RUN git clone --depth 1 --branch "${COMFYUI_REF}" https://github.com/comfyanonymous/ComfyUI.git /ComfyUI

FROM scratch AS comfyui
COPY --from=comfyui-git /ComfyUI/ /

# FileBrowser's last releases are fixed now that upstream is archived: download one, check it.
FROM debian:bookworm-slim AS filebrowser-download
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ARG FILEBROWSER_VERSION
ARG FILEBROWSER_SHA256
RUN test -n "${FILEBROWSER_SHA256}" \
   || { echo "FILEBROWSER_SHA256 is empty: fill it in config/versions.conf (see the comment there)" >&2; exit 1; } \
 && curl -fsSL -o /tmp/filebrowser.tar.gz \
      "https://github.com/filebrowser/filebrowser/releases/download/${FILEBROWSER_VERSION}/linux-amd64-filebrowser.tar.gz" \
 && echo "${FILEBROWSER_SHA256}  /tmp/filebrowser.tar.gz" | sha256sum -c - \
 && mkdir /out \
 && tar -xzf /tmp/filebrowser.tar.gz -C /out filebrowser

FROM scratch AS filebrowser
COPY --from=filebrowser-download /out/filebrowser /filebrowser

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="phoenix" \
      org.opencontainers.image.description="ComfyUI GPU pod provisioned through a BullMQ job graph" \
      org.opencontainers.image.source="https://github.com/phoenix-pod/phoenix" \
      org.opencontainers.image.licenses="MIT"

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      redis-server supervisor git aria2 tini curl ca-certificates util-linux nftables \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --user-group --shell /bin/bash sduser \
 && mkdir -p /workspace \
 && chown sduser:sduser /workspace

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=builder /opt/phoenix/package.json /opt/phoenix/package.json
COPY --from=builder /opt/phoenix/node_modules /opt/phoenix/node_modules
COPY --from=builder /opt/phoenix/dist /opt/phoenix/dist
COPY config /opt/phoenix/config
COPY supervisord.conf /opt/phoenix/supervisord.conf
COPY --chmod=0755 scripts/entrypoint.sh /opt/phoenix/scripts/entrypoint.sh
COPY --chmod=0755 scripts/privacy-firewall.sh /opt/phoenix/scripts/privacy-firewall.sh
COPY --from=filebrowser --chmod=0755 /filebrowser /usr/local/bin/filebrowser
RUN ln -s /opt/phoenix/dist/cli.js /usr/local/bin/phoenix

# ComfyUI ships in the image; the entrypoint copies it into /workspace on a pod's first start.
# Its Python is a venv over the base image's packages, so NVIDIA's torch stays as built and the
# nodes worker (running as sduser) can pip-install custom nodes' requirements at run time.
COPY --from=comfyui / /opt/ComfyUI/
RUN python3 -m venv --system-site-packages --without-pip /opt/venv \
 && if [ -f /opt/ComfyUI/requirements.txt ]; then \
      python3 -m pip list --format=freeze | grep -iE '^(torch|torchvision|torchaudio|triton)==' > /tmp/torch-stack.txt || true; \
      grep -viE '^(torch|torchvision|torchaudio)([^a-z0-9_.-]|$)' /opt/ComfyUI/requirements.txt > /tmp/comfyui-requirements.txt; \
      PIP_BREAK_SYSTEM_PACKAGES=1 /opt/venv/bin/python -m pip install --no-cache-dir \
        -r /tmp/comfyui-requirements.txt -c /tmp/torch-stack.txt; \
      rm -f /tmp/torch-stack.txt /tmp/comfyui-requirements.txt; \
    fi \
 && chown -R sduser:sduser /opt/venv

ENV WORKSPACE=/workspace \
    COMFYUI_PYTHON=/opt/venv/bin/python \
    NODE_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PRIVACY_ENABLED=true

EXPOSE 8188 8189 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PHOENIX_PORT:-8189}/healthz" || exit 1

# The entrypoint starts as root only to prepare /workspace (a RunPod volume is root's), then runs
# supervisord and everything under it as sduser.
ENTRYPOINT ["tini", "--", "/opt/phoenix/scripts/entrypoint.sh"]
