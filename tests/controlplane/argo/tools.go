//go:build tools

// Package tools pins Argo Rollouts' controller, which build-argo.sh builds from the
// module proxy for the Argo Rollouts tier in tests/controlplane.rs.
package tools

import _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
