//go:build !linux

package main

import "io"

// isTerminal is false where we have no portable check: scripts keep their
// exact output, and a person still gets answers, without a prompt.
func isTerminal(io.Reader) bool { return false }
