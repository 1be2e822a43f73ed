#!/usr/bin/env bash
# Builds Argo Rollouts' controller (rollouts-controller) from the Go module proxy, for
# the Argo Rollouts tier in tests/controlplane.rs, and copies its CRDs (the
# controller lists every one of them, not only Rollouts) into crds/ beside it. Reused from target/controlplane/argo-<hash of ./argo's go.mod and go.sum>/ while
# the version stays the same. Prints that directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
command -v go >/dev/null 2>&1 || { echo "error: go is not installed; Argo Rollouts is built from Go modules" >&2; exit 1; }

key="$(cat "$here"/argo/go.mod "$here"/argo/go.sum "$0" | sha256sum | cut -c1-12)"
out="$root/target/controlplane/argo-$key"
built() { [ -x "$out/rollouts-controller" ] && [ -f "$out/crds/rollout-crd.yaml" ]; }
if built; then echo "$out"; exit 0; fi

mkdir -p "$root/target/controlplane"
exec 9>"$root/target/controlplane/.argo.lock"
flock 9
if built; then echo "$out"; exit 0; fi

partial="$out.partial"
rm -rf "$partial" && mkdir -p "$partial"
echo "building Argo Rollouts' controller (a cold build takes minutes)" >&2
cd "$here/argo"
go build -trimpath -o "$partial/" github.com/argoproj/argo-rollouts/cmd/rollouts-controller >&2
module="$(go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
mkdir "$partial/crds"
cp "$module"/manifests/crds/*-crd.yaml "$partial/crds/"
rm -rf "$out" && mv "$partial" "$out"
echo "$out"
