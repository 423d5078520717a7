//go:build !linux

package main

import "io"

// isTerminal is false where we have no portable check: scripts keep their
// exact output, and a person still gets answers, without a prompt.
func isTerminal(any) bool { return false }

// newLineSource is never called where isTerminal is always false.
func newLineSource(in io.Reader, msg io.Writer) lineSource { return newPromptLines(in, msg) }
