package faultnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// target is a real UDP socket that records what arrives and can echo it.
type target struct {
	conn *net.UDPConn
	echo bool
	mu   sync.Mutex
	got  []uint32
	wg   sync.WaitGroup
}

func newTarget(t *testing.T, echo bool) *target {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20) // the test counts what the relay passes: the kernel must not drop any
	tg := &target{conn: c, echo: echo}
	tg.wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			tg.mu.Lock()
			tg.got = append(tg.got, binary.BigEndian.Uint32(buf))
			tg.mu.Unlock()
			if tg.echo {
				_, _ = c.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	})
	t.Cleanup(func() { c.Close(); tg.wg.Wait() })
	return tg
}

func (tg *target) received() []uint32 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]uint32(nil), tg.got...)
}

func start(t *testing.T, cfg Config) *Relay {
	t.Helper()
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func send(t *testing.T, to *net.UDPAddr, n int) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 4)
	for i := range n {
		binary.BigEndian.PutUint32(buf, uint32(i))
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if i%32 == 31 {
			time.Sleep(time.Millisecond) // pace, so that no socket buffer overflows and loses what the relay did not
		}
	}
	return c
}

// settle waits until the relay has delivered what it will: its forwarded
// count stops at want.
func settle(t *testing.T, r *Relay, dir int, want uint64) {
	t.Helper()
	if !eventually.Within(10*time.Second, func() bool { return r.Stats().Forwarded[dir] >= want }) {
		t.Fatalf("forwarded %d, want %d", r.Stats().Forwarded[dir], want)
	}
}

// TestLossAndDupAccounting: every datagram is dropped, passed once or
// passed twice, and the target receives exactly what the relay says.
func TestLossAndDupAccounting(t *testing.T) {
	tg := newTarget(t, false)
	r := start(t, Config{Target: tg.conn.LocalAddr().String(), Forward: Faults{Loss: 0.2, Dup: 0.1}, Seed: 7})
	const n = 2000
	send(t, r.Addr(), n)
	// Each datagram the relay read was dropped or forwarded, some twice.
	accounted := func() bool {
		st := r.Stats()
		return st.Forwarded[forward]+st.Dropped[forward]-st.Duplicated[forward] == n
	}
	if !eventually.Within(10*time.Second, accounted) {
		t.Fatalf("stats %+v do not account for %d datagrams", r.Stats(), n)
	}
	st := r.Stats()
	settle(t, r, forward, st.Forwarded[forward])
	eventually.Within(10*time.Second, func() bool { return len(tg.received()) >= int(st.Forwarded[forward]) })
	got := tg.received()
	if len(got) != int(st.Forwarded[forward]) {
		t.Fatalf("target got %d, relay forwarded %d", len(got), st.Forwarded[forward])
	}
	if d := float64(st.Dropped[forward]) / n; d < 0.15 || d > 0.25 {
		t.Errorf("dropped %.1f%%, asked for 20%%", 100*d)
	}
	if st.Duplicated[forward] == 0 {
		t.Error("nothing duplicated")
	}
	seen := map[uint32]int{}
	for _, v := range got {
		seen[v]++
	}
	twice := 0
	for _, c := range seen {
		if c == 2 {
			twice++
		}
	}
	if uint64(twice) > st.Duplicated[forward] || twice == 0 {
		t.Errorf("%d datagrams arrived twice; %d were duplicated", twice, st.Duplicated[forward])
	}
}

// TestReorderAndDelay: everything arrives, some out of order, none sooner
// than the delay.
func TestReorderAndDelay(t *testing.T) {
	tg := newTarget(t, true)
	r := start(t, Config{Target: tg.conn.LocalAddr().String(),
		Forward: Faults{Reorder: 0.3, Delay: 20 * time.Millisecond}, Backward: Faults{Delay: 10 * time.Millisecond}})
	began := time.Now()
	c := send(t, r.Addr(), 500)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	var order []uint32
	for len(order) < 500 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d echoes: %v", len(order), err)
		}
		if len(order) == 0 && time.Since(began) < 30*time.Millisecond {
			t.Fatalf("first echo after %v, before the 20+10 ms of delay", time.Since(began))
		}
		order = append(order, binary.BigEndian.Uint32(buf[:n]))
	}
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("reordering asked for, none seen")
	}
}

// TestSeedReplays: the same seed and the same datagrams give the same
// losses.
func TestSeedReplays(t *testing.T) {
	run := func() []uint32 {
		tg := newTarget(t, false)
		r := start(t, Config{Target: tg.conn.LocalAddr().String(), Forward: Faults{Loss: 0.5}, Seed: 42})
		send(t, r.Addr(), 300)
		eventually.True(t, 10*time.Second, "the relay to pass or drop all 300", func() bool {
			st := r.Stats()
			return st.Forwarded[forward]+st.Dropped[forward] >= 300
		})
		forwarded := r.Stats().Forwarded[forward]
		settle(t, r, forward, forwarded)
		eventually.True(t, 10*time.Second, "the target to receive what the relay passed", func() bool { return len(tg.received()) >= int(forwarded) })
		return tg.received()
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("runs passed %d and %d datagrams", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("runs differ at %d: %d and %d", i, a[i], b[i])
		}
	}
}

// TestPause: paused, the relay passes nothing either way and counts it
// dropped; resumed, it passes both ways again.
func TestPause(t *testing.T) {
	tg, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	r := start(t, Config{Target: tg.LocalAddr().String()})
	c, err := net.DialUDP("udp", nil, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 16)
	// read expects want on conn, or nothing when want is empty.
	read := func(conn *net.UDPConn, want string) *net.UDPAddr {
		t.Helper()
		wait := 5 * time.Second
		if want == "" {
			wait = 100 * time.Millisecond // long enough for loopback: the relay counted it dropped already
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := conn.ReadFromUDP(buf)
		if got := string(buf[:n]); want != "" && (err != nil || got != want) || want == "" && err == nil {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
		return from
	}
	write := func(conn *net.UDPConn, to *net.UDPAddr, s string) {
		t.Helper()
		var err error
		if to == nil {
			_, err = conn.Write([]byte(s))
		} else {
			_, err = conn.WriteToUDP([]byte(s), to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	dropped := func(dir int, n uint64) {
		t.Helper()
		eventually.True(t, 5*time.Second, fmt.Sprintf("%d dropped in direction %d", n, dir), func() bool { return r.Stats().Dropped[dir] == n })
	}

	write(c, nil, "1")
	session := read(tg, "1") // the relay's socket for this client
	r.Pause(true)
	write(c, nil, "2")
	dropped(forward, 1)
	read(tg, "")
	write(tg, session, "3")
	dropped(backward, 1)
	read(c, "")
	r.Pause(false)
	write(c, nil, "4")
	read(tg, "4")
	write(tg, session, "5")
	read(c, "5")
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Target: "127.0.0.1:1", Forward: Faults{Loss: 2}}, {Target: "127.0.0.1:1", Backward: Faults{Delay: -1}}} {
		if r, err := Start(cfg); err == nil {
			r.Close()
			t.Errorf("Start(%+v) accepted", cfg)
		}
	}
}
