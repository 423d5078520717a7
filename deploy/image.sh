#!/usr/bin/env bash
# deploy/image.sh [TAG]: build discal's container image (default
# discal:latest) offline, the way CoreDNS builds its own: the static
# binaries by `go build` here, then the Dockerfile at the repository's root
# copies them into an empty image (FROM scratch: nothing is pulled).
#
# The engine is docker when a Docker engine answers, else podman; set
# DISCAL_ENGINE=podman (or docker) to choose. VERSION (default: git
# describe, else "dev") goes into the binaries' -version and the image's
# label.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tag="${1:-discal:latest}"

engine="${DISCAL_ENGINE:-}"
if [ -z "$engine" ]; then
	# The docker client alone is not enough: it needs an engine to talk to.
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		engine=docker
	elif command -v podman >/dev/null 2>&1; then
		engine=podman
	else
		echo "deploy/image.sh: neither a Docker engine nor podman is here; install one (Debian: apt-get install podman)" >&2
		exit 1
	fi
fi
command -v go >/dev/null 2>&1 || { echo "deploy/image.sh: Go is not on PATH; the binaries are built with it" >&2; exit 1; }

version="${VERSION:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)}"
ctx="$(mktemp -d "${TMPDIR:-/tmp}/discal-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

# Static (no C library in the image), reproducible paths, no debug tables.
(cd "$root" && CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X github.com/discal/discal/internal/cli.Version=${version}" \
	-o "$ctx/" ./cmd/udpserver ./cmd/udpproxy ./cmd/udpclient)
cp "$root/Dockerfile" "$ctx/Dockerfile"
"$engine" build --build-arg "VERSION=${version}" -t "$tag" "$ctx" >&2
echo "deploy/image.sh: built $tag with $engine (version $version)"
