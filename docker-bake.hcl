# docker buildx bake            → the default image (CUDA 12.9: Turing to Blackwell, RTX 50xx included)
# docker buildx bake cu126      → the same on CUDA 12.6, for hosts whose driver predates CUDA 12.9
# docker buildx bake all        → both
# Every variable can be set from the environment; the image workflow exports config/versions.conf,
# whose values these defaults mirror (test/image/pins.test.ts keeps them equal).

variable "BASE_IMAGE" { default = "nvcr.io/nvidia/pytorch:25.06-py3" }
variable "NODE_VERSION" { default = "24" }
variable "COMFYUI_REF" { default = "v0.8.1" }
variable "FILEBROWSER_VERSION" { default = "v2.63.23" }
variable "FILEBROWSER_SHA256" { default = "b14db2bb8033caa3f80205eb6578b2ed0744ebd9e716b790bc4a9703ce909e88" }

# Where and under which tags the image goes.
variable "IMAGE" { default = "ghcr.io/phoenix-pod/phoenix" }
variable "VERSION" { default = "dev" }
variable "COMMIT" { default = "" }
variable "LATEST" { default = "false" }

group "default" { targets = ["phoenix"] }
group "all" { targets = ["phoenix", "cu126"] }

target "_common" {
  context    = "."
  dockerfile = "Dockerfile"
  platforms  = ["linux/amd64"]
  args = {
    NODE_VERSION        = NODE_VERSION
    COMFYUI_REF         = COMFYUI_REF
    FILEBROWSER_VERSION = FILEBROWSER_VERSION
    FILEBROWSER_SHA256  = FILEBROWSER_SHA256
  }
  labels = {
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.revision" = COMMIT
  }
}

function "tags" {
  params = [suffix]
  result = compact([
    "${IMAGE}:${VERSION}${suffix}",
    COMMIT != "" ? "${IMAGE}:sha-${COMMIT}${suffix}" : "",
    LATEST == "true" ? "${IMAGE}:latest${suffix}" : "",
  ])
}

target "phoenix" {
  inherits = ["_common"]
  args     = { BASE_IMAGE = BASE_IMAGE }
  tags     = tags("")
}

# NGC PyTorch 24.12: CUDA 12.6.3, driver 560 or newer; no sm_120 (RTX 50xx needs the default image).
target "cu126" {
  inherits = ["_common"]
  args     = { BASE_IMAGE = "nvcr.io/nvidia/pytorch:24.12-py3" }
  tags     = tags("-cu126")
}
