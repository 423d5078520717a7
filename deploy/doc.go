// Package deploy holds no code: image.sh and the repository's Dockerfile
// build discal's container image; kubernetes/ (and prometheus-operator/,
// the same with a PodMonitor), prometheus/ and grafana/ hold what runs
// discal in a cluster and watches it. This package's tests check those
// files against the binaries and the code: the manifests decode strictly
// into the Kubernetes API types, every flag they pass exists, probe paths
// are served, drains fit the grace Kubernetes gives, the image's binaries
// are static, the image itself builds and runs under podman, the alert
// rules pass promtool, and every metric the rules and the dashboard query
// is one the code exports.
//
// It is a module of its own, so that the Kubernetes types stay out of the
// library's dependencies: run its tests from this folder (go test ./...);
// .ci/run does.
package deploy
