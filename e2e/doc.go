// Package e2e holds the tests that run discal as real processes: the
// binaries built from cmd/, started on loopback, driven as a user would.
package e2e
