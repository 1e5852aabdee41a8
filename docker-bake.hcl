// Multi-platform images of every service: `docker buildx bake` (docs: README "Release
// artefacts"). Needs a builder that can target both platforms, for example
//
//   docker buildx create --name chassis --use      # a docker-container builder
//   docker run --privileged --rm tonistiigi/binfmt --install arm64   # emulation, if needed
//   REGISTRY=ghcr.io/acme TAG=1.4.0 docker buildx bake --push
//
// A plain `docker buildx bake` builds both platforms into the build cache only (a
// multi-platform result cannot be loaded into the local image store); `--set
// *.platform=linux/amd64 --load` builds one platform and loads it. The base image is the
// Dockerfile's own PYTHON_BASE default (python:3.11-slim-bookworm, a multi-arch image;
// scripts/refresh-base-digests.sh pins it by digest on a machine that reaches the
// registry). tests/deploy/test_release.py checks this file against the Dockerfile and
// docker-compose.yml offline.

variable "REGISTRY" {
  // Where the images are pushed; "chassis" gives chassis/users:TAG as compose names them.
  default = "chassis"
}

variable "TAG" {
  default = "dev"
}

variable "SOURCE_URL" {
  // The repository, as deploy/helm/chassis/Chart.yaml names it (home, sources).
  default = "https://github.com/chassis-platform/chassis"
}

variable "PLATFORMS" {
  default = ["linux/amd64", "linux/arm64"]
}

group "default" {
  targets = ["users", "orders", "gateway", "worker"]
}

// What every service image shares: the one Dockerfile, both platforms, OCI labels.
target "_service" {
  context    = "."
  dockerfile = "Dockerfile"
  platforms  = PLATFORMS
  labels = {
    "org.opencontainers.image.source"  = SOURCE_URL
    "org.opencontainers.image.version" = TAG
  }
  // SBOM and provenance attestations, attached to the pushed image index.
  attest = ["type=sbom", "type=provenance,mode=max"]
}

target "users" {
  inherits = ["_service"]
  args     = { SERVICE = "users" }
  tags     = ["${REGISTRY}/users:${TAG}"]
}

target "orders" {
  inherits = ["_service"]
  args     = { SERVICE = "orders" }
  tags     = ["${REGISTRY}/orders:${TAG}"]
}

target "gateway" {
  inherits = ["_service"]
  args     = { SERVICE = "gateway" }
  tags     = ["${REGISTRY}/gateway:${TAG}"]
}

target "worker" {
  inherits = ["_service"]
  args     = { SERVICE = "worker" }
  tags     = ["${REGISTRY}/worker:${TAG}"]
}
