package codec

import "testing"

func TestGate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TextGate
	}{
		{"6 * 7\n", TextQuestion},
		{"stats\n", TextQuestion},
		{"\x00\x01garbage", NotText},
		{"", NotText},
		{"error: division by zero\n", TextAnswer},
		{"ok: drain\n", TextAnswer},
		{"1\n", TextTooShort},
	} {
		if got := Gate([]byte(c.in)); got != c.want {
			t.Errorf("Gate(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
