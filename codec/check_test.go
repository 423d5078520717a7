package codec

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestServerTextIsChecked: a name or an error message that is not
// printable text refuses the datagram that carries it, in every decoder it
// enters by, with an error that wraps ErrBadText.
func TestServerTextIsChecked(t *testing.T) {
	bad := []struct {
		name, text string
	}{
		{"newline", "s1\nproxy policy=forged"},
		{"escape", "\x1b[2Jwiped"},
		{"invalid UTF-8", "s\xff1"},
		{"NUL", "s\x001"},
		{"DEL", "s\x7f"},
		{"C1 control", "s\u00851"},
		{"bidi override", "s\u202e1"},
		{"long", strings.Repeat("x", MaxMessage+1)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			bodies := map[string]map[string]any{
				"reply server":  {"result": 1, "server": tt.text},
				"reply error":   {"code": 5, "error": tt.text},
				"status server": {"server": tt.text, "cores": 2},
				"join name":     {"calc_port": 7001, "name": tt.text},
			}
			for where, body := range bodies {
				b, err := msgpack.Marshal(body)
				if err != nil {
					t.Fatal(err)
				}
				switch where {
				case "reply server", "reply error":
					_, err = DecodeReply(b)
				case "status server":
					_, err = DecodeStatus(b)
				case "join name":
					_, err = DecodeJoin(b)
				}
				if !errors.Is(err, ErrBadText) {
					t.Errorf("%s %q: %v, want ErrBadText", where, tt.text, err)
				}
			}
		})
	}
	// What discal itself writes passes: names as udpserver's -name allows,
	// messages with spaces, quotes and non-ASCII letters.
	for _, name := range []string{"", "s1", "[fe80::1%eth0]:7001", strings.Repeat("n", MaxName)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"s 1", "s\t1", "é", strings.Repeat("n", MaxName+1)} {
		if err := CheckName(name); !errors.Is(err, ErrBadText) {
			t.Errorf("CheckName(%q) = %v, want ErrBadText", name, err)
		}
	}
	for _, msg := range []string{"", `unknown operation "pow"`, "division par zéro", strings.Repeat("x", MaxMessage)} {
		if err := CheckMessage(msg); err != nil {
			t.Errorf("CheckMessage(%q): %v", msg, err)
		}
	}
}
