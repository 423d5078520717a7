// Package deploy holds no code: kubernetes/, prometheus/ and grafana/ hold
// what runs discal in a cluster and watches it, and this package's tests
// check those files against the binaries and the code: every flag a
// manifest passes exists, probe paths are served, the Dockerfile's
// binaries are static, the alert rules pass promtool, and every metric the
// rules and the dashboard query is one the code exports.
package deploy
