package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/controlkey"
)

// control is a command for a server's status port (-status-addr): drain,
// undrain or burn F, sent in the binary form, sealed with -control-key when
// given.
type control struct {
	addr string
	key  []byte // nil: unsealed, which a server with a key obeys from loopback only
	cmd  codec.Control
}

// parseControl reads the words after the flags as a control command.
func parseControl(args []string) (codec.Control, error) {
	switch {
	case len(args) == 1 && (args[0] == codec.CmdDrain || args[0] == codec.CmdUndrain):
		return codec.Control{Cmd: args[0]}, nil
	case len(args) == 2 && args[0] == codec.CmdBurn:
		f, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return codec.Control{}, fmt.Errorf("burn %q: want a fraction from 0 to 1", args[1])
		}
		if e := codec.CheckFraction(f); e != nil {
			return codec.Control{}, e
		}
		return codec.Control{Cmd: codec.CmdBurn, Fraction: f}, nil
	}
	return codec.Control{}, fmt.Errorf("with -status-addr, the command is drain, undrain or burn F, not %q", strings.Join(args, " "))
}

// newControl checks the control command's flags and arguments.
func newControl(addr, keyFile string, args []string) (*control, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("-status-addr %q: want host:port", addr)
	}
	cmd, err := parseControl(args)
	if err != nil {
		return nil, err
	}
	c := &control{addr: addr, cmd: cmd}
	if keyFile != "" {
		if c.key, err = controlkey.Load(keyFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// errNoAnswer is a command no answer confirmed: the server refused it
// unanswered (a seal that did not check, or none from another host), or
// it was not reached.
var errNoAnswer = errors.New("no answer: not confirmed (a server with -control-key answers nothing it refuses: is the key the server's? is the server up?)")

// send sends the command, sealed afresh on every try so that a resent one
// is not taken for a replay, and waits for the server's answer: nil when
// it confirmed, its error reply, or errNoAnswer after the retries.
func (c *control) send(ctx context.Context, timeout time.Duration, retries int) (codec.Control, error) {
	conn, err := net.Dial("udp", c.addr)
	if err != nil {
		return codec.Control{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	id := rand.Uint64() | 1
	buf := make([]byte, codec.MaxDatagram)
	for try := 0; try <= retries && ctx.Err() == nil; try++ {
		msg := codec.AppendControl(nil, id, c.cmd)
		if c.key != nil {
			msg = codec.Seal(msg, c.key, time.Now())
		}
		if _, err := conn.Write(msg); err != nil {
			return codec.Control{}, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(timeout << min(try, 2)))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break // the deadline, or a refused port: try again
			}
			if done, got, err := c.answer(buf[:n], id); done {
				return got, err
			}
		}
	}
	return codec.Control{}, errNoAnswer
}

// answer reads one datagram; done is false for one that is not the
// answer to the command with this ID.
func (c *control) answer(b []byte, id uint64) (done bool, got codec.Control, err error) {
	h, err := codec.ParseHeader(b)
	if err != nil || h.ID != id {
		return false, got, nil
	}
	switch h.Kind {
	case codec.KindControlReply:
		got, err := codec.DecodeControl(b[codec.HeaderSize:])
		return err == nil, got, err
	case codec.KindReply:
		r, err := codec.DecodeReply(b[codec.HeaderSize:])
		if err != nil || r.Err == nil {
			return false, got, nil
		}
		return true, got, r.Err
	}
	return false, got, nil
}

// runControl sends the command and reports: exitOK when the server
// confirmed it, exitFailed when it answered with an error, exitNoAnswer
// when nothing confirmed it (refused unanswered, or not reached).
func runControl(ctx context.Context, c *control, timeout time.Duration, retries int, stdout, stderr io.Writer) int {
	got, err := c.send(ctx, timeout, retries)
	switch {
	case ctx.Err() != nil:
		return exitSignal
	case errors.Is(err, errNoAnswer):
		fmt.Fprintf(stderr, "udpclient: %s %s: %v\n", c.addr, c.cmd.Cmd, err)
		return exitNoAnswer
	case err != nil:
		fmt.Fprintf(stderr, "udpclient: %s %s: error: %v\n", c.addr, c.cmd.Cmd, err)
		return exitFailed
	}
	line := "ok: " + got.Cmd
	if got.Cmd == codec.CmdBurn {
		line += " " + strconv.FormatFloat(got.Fraction, 'g', -1, 64)
	}
	fmt.Fprintln(stdout, line)
	return exitOK
}
