#!/usr/bin/env bash
# Builds the real control plane that tests/controlplane.rs runs backout against:
# kube-apiserver and kube-controller-manager from k8s.io/kubernetes (./kube), etcd from
# go.etcd.io/etcd/server (./etcd), all from the Go module proxy. The binaries go to
# target/controlplane/<hash of the go.mod and go.sum files>/ and are reused while the
# versions stay the same. Prints that directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
command -v go >/dev/null 2>&1 || { echo "error: go is not installed; the control plane is built from Go modules" >&2; exit 1; }

key="$(cat "$here"/kube/go.mod "$here"/kube/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum "$0" | sha256sum | cut -c1-12)"
out="$root/target/controlplane/$key"
bins=(kube-apiserver kube-controller-manager etcd)
built() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if built; then echo "$out"; exit 0; fi

# One build at a time: test processes and .ci/run may ask at once.
mkdir -p "$root/target/controlplane"
exec 9>"$root/target/controlplane/.lock"
flock 9
if built; then echo "$out"; exit 0; fi

partial="$out.partial"
rm -rf "$partial" && mkdir -p "$partial"
echo "building kube-apiserver and kube-controller-manager (a cold build takes many minutes)" >&2
(cd "$here/kube" && go build -trimpath -o "$partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager) >&2
echo "building etcd" >&2
(cd "$here/etcd" && go build -trimpath -o "$partial/etcd" .) >&2
rm -rf "$out" && mv "$partial" "$out"
echo "$out"
