package main

import "testing"

// TestEscape: control characters, invisible formatting characters and bad
// UTF-8 are written as escapes, so that nothing a reply carries can move
// the cursor, change the terminal or start a new line; printable text,
// any script, stays as it is. (codec refuses such text from servers
// already; this is the last line of defence on the terminal.)
func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"s1", "s1"},
		{"Zürich 東京", "Zürich 東京"},
		{"evil\x1b]0;owned\x07\nline", `evil\x1b]0;owned\a\nline`},
		{"a\rb\tc", `a\rb\tc`},
		{"rtl\u202eoverride", `rtl\u202eoverride`},
		{"bad\xffutf8", `bad\xffutf8`},
	} {
		if got := escape(c.in); got != c.want {
			t.Errorf("escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
