package dashboard

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// FuzzExprOf: whatever a /calc body holds, exprOf returns an expression
// or an error, never a panic; and an expression sent by each of the three
// forms comes back as it was sent.
func FuzzExprOf(f *testing.F) {
	for _, s := range []string{"6 * 7", `{"expr": "6 * 7"}`, "expr=6%2B7", "a=1&expr=2", "{", "=", "expr=%zz", "", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = exprOf(s) // any body: no panic
		j, _ := json.Marshal(map[string]string{"expr": s})
		if got, err := exprOf(string(j)); err != nil || (got != s && strings.ToValidUTF8(s, "\uFFFD") == s) {
			t.Fatalf("JSON %s: %q, %v", j, got, err)
		}
		if got, err := exprOf("expr=" + url.QueryEscape(s)); err != nil || got != s {
			t.Fatalf("form %q: %q, %v", "expr="+url.QueryEscape(s), got, err)
		}
		if !strings.HasPrefix(s, "{") && !strings.Contains(s, "=") {
			if got, err := exprOf(s); err != nil || got != s {
				t.Fatalf("text %q: %q, %v", s, got, err)
			}
		}
	})
}
