package discaltest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpproxy"
)

// A Fake stands in for a calculator server where a real one cannot show
// what a test needs: a server that never answers, answers late, answers
// wrong or with hostile text, or hands the test the IDs the proxy uses. It
// has the two ports of a real server, each a real UDP socket: the
// calculator port answers requests as FakeConfig.Answer says, after
// FakeConfig.Delay; the status port answers every status query with
// FakeConfig.Status, whatever the calculator port does. It is a normal
// package's type, not a test's, so that the bench's misbehaving child
// processes run the same fake.

// FakeConfig describes a Fake. Zero values mean defaults.
type FakeConfig struct {
	// Name is the server name a default answer and the default status
	// give. Default "fake".
	Name string
	// Answer decides the reply to each request that reaches the
	// calculator port; ok false sends none. It runs on the fake's reading
	// goroutine, one request at a time. Default: the right answer, as a
	// real server gives it (Compute).
	Answer func(req Request) (reply codec.Reply, ok bool)
	// Delay holds every answer back this long; answers leave in the order
	// their requests came. At most fakeQueue answers wait: beyond that the
	// fake drops requests, as an overloaded server would. Default 0: at
	// once.
	Delay time.Duration
	// Status is what the status port answers every status query with,
	// with Uptime filled in and, when it is 0, CalcPort. Default: Name,
	// idle, two cores on a two-core host.
	Status *codec.Status
	// IP is the address both ports listen on, on ports the kernel picks.
	// Default 127.0.0.1.
	IP netip.Addr
	// ReadBuffer, when positive, is the receive buffer both sockets ask
	// for, so that a burst under load is not lost to a small default.
	ReadBuffer int
}

// Request is one request as it reached a Fake's calculator port.
type Request struct {
	codec.Request
	ID   uint64         // the ID in its header, which a reply must carry
	From netip.AddrPort // who sent it: a proxy's upstream socket, or a client
	Err  error          // the body did not decode (Request is then zero)
}

// Compute is the answer a real server named name gives req: the result,
// or the error, of the operation.
func Compute(name string, req Request) codec.Reply {
	err := req.Err
	var res codec.Number
	if err == nil {
		res, err = arith.Eval(req.Op, req.A, req.B)
	}
	if err != nil {
		return codec.Reply{Err: codec.AsError(err), Server: name}
	}
	return codec.Reply{Result: res, Server: name}
}

// fakeQueue bounds the answers a Fake with a Delay holds back.
const fakeQueue = 1 << 16

// Fake is a running fake server.
type Fake struct {
	// CalcAddr and StatusAddr are where its two ports listen.
	CalcAddr, StatusAddr *net.UDPAddr

	cfg           FakeConfig
	calc, status  *net.UDPConn
	started       time.Time
	statusAnswers atomic.Uint64
	done          chan struct{} // closed by Close: answers held back are dropped
	wg            sync.WaitGroup
	closeOnce     sync.Once
}

// ListenFake opens a Fake's two ports and serves them until Close.
func ListenFake(cfg FakeConfig) (*Fake, error) {
	if cfg.Name == "" {
		cfg.Name = "fake"
	}
	if cfg.Answer == nil {
		name := cfg.Name
		cfg.Answer = func(req Request) (codec.Reply, bool) { return Compute(name, req), true }
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	f := &Fake{cfg: cfg, started: time.Now(), done: make(chan struct{})}
	var err error
	if f.calc, err = f.listen(); err != nil {
		return nil, err
	}
	if f.status, err = f.listen(); err != nil {
		f.calc.Close()
		return nil, err
	}
	f.CalcAddr, f.StatusAddr = f.calc.LocalAddr().(*net.UDPAddr), f.status.LocalAddr().(*net.UDPAddr)
	st := codec.Status{Server: cfg.Name, Cores: 2, HostCores: 2}
	if cfg.Status != nil {
		st = *cfg.Status
	}
	if st.CalcPort == 0 {
		st.CalcPort = uint16(f.CalcAddr.Port)
	}
	var queue chan heldBack
	if cfg.Delay > 0 {
		queue = make(chan heldBack, fakeQueue)
		f.wg.Go(func() { f.sendHeldBack(queue) })
	}
	f.wg.Go(func() { f.serveStatus(st) })
	f.wg.Go(func() { f.serveCalc(queue) })
	return f, nil
}

// StatusAnswers is how many status queries the fake has answered.
func (f *Fake) StatusAnswers() uint64 { return f.statusAnswers.Load() }

// StartFake runs a Fake until the test ends.
func StartFake(t testing.TB, cfg FakeConfig) *Fake {
	t.Helper()
	f, err := ListenFake(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func (f *Fake) listen() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(f.cfg.IP, 0)))
	if err != nil {
		return nil, fmt.Errorf("discaltest: fake %s: %w", f.cfg.Name, err)
	}
	if f.cfg.ReadBuffer > 0 {
		_ = c.SetReadBuffer(f.cfg.ReadBuffer)
	}
	return c, nil
}

// ServerAddr is the fake as a proxy's configuration names a server.
func (f *Fake) ServerAddr() udpproxy.ServerAddr {
	return udpproxy.ServerAddr{Calc: f.CalcAddr.String(), Status: f.StatusAddr.String()}
}

// WriteTo sends p from the calculator port, as the server's own answers
// leave: for a test that answers by hand, late, twice or forged.
func (f *Fake) WriteTo(p []byte, addr net.Addr) (int, error) { return f.calc.WriteTo(p, addr) }

// Close stops both ports, drops the answers held back, and returns once
// the fake's goroutines have ended.
func (f *Fake) Close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.done)
		err = errors.Join(f.calc.Close(), f.status.Close())
		f.wg.Wait()
	})
	return err
}

// serveStatus answers every status query with st.
func (f *Fake) serveStatus(st codec.Status) {
	buf := make([]byte, codec.MaxDatagram)
	var out []byte
	for {
		n, from, err := f.status.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil || h.Kind != codec.KindStatusQuery {
			continue
		}
		st.Uptime = time.Since(f.started)
		out = codec.AppendStatus(out[:0], h.ID, st)
		if _, err := f.status.WriteToUDPAddrPort(out, from); err == nil {
			f.statusAnswers.Add(1)
		}
	}
}

// heldBack is an answer waiting for its time.
type heldBack struct {
	at  time.Time
	to  netip.AddrPort
	pkt []byte
}

// serveCalc reads requests and answers them, at once or, with a delay,
// through queue. The delay is the same for all, so the queue is in the
// order the answers are due.
func (f *Fake) serveCalc(queue chan<- heldBack) {
	if queue != nil {
		defer close(queue)
	}
	buf := make([]byte, codec.MaxDatagram)
	for {
		n, from, err := f.calc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt, ok := f.answer(buf[:n], from)
		switch {
		case !ok:
		case queue == nil:
			_, _ = f.calc.WriteToUDPAddrPort(pkt, from)
		default:
			select {
			case queue <- heldBack{at: time.Now().Add(f.cfg.Delay), to: from, pkt: pkt}:
			default: // full: dropped
			}
		}
	}
}

// sendHeldBack sends each answer when it is due, until the queue closes
// or the fake does.
func (f *Fake) sendHeldBack(queue <-chan heldBack) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for a := range queue {
		t.Reset(time.Until(a.at)) // the delay under test
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		_, _ = f.calc.WriteToUDPAddrPort(a.pkt, a.to)
	}
}

// answer is the reply datagram to one datagram, if it gets one.
func (f *Fake) answer(pkt []byte, from netip.AddrPort) ([]byte, bool) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindRequest {
		return nil, false
	}
	req := Request{ID: h.ID, From: from}
	if r, err := codec.DecodeRequest(pkt[codec.HeaderSize:]); err != nil {
		req.Err = err
	} else {
		req.Request = r
	}
	reply, ok := f.cfg.Answer(req)
	if !ok {
		return nil, false
	}
	return codec.AppendReply(nil, h.ID, reply), true
}
