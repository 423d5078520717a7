package udpclient

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/discal/discal/codec"
)

// Answer is what came back for one request, with what the client saw of
// the exchange.
type Answer struct {
	Result  codec.Number  // the result; zero when the call returned an error
	Server  string        // the server that computed it, or refused to, as its reply names it
	ID      uint64        // the request's ID, the same on every try
	Proxy   string        // the address that answered, "" when none did
	Tries   int           // how many times the request was sent
	Latency time.Duration // from the first send to the answer, or to giving up
}

// Calc computes a op b and returns the result, or the calculation's error
// as a *codec.Error.
func (c *Client) Calc(ctx context.Context, op codec.Op, a, b codec.Number) (codec.Number, error) {
	ans, err := c.Exchange(ctx, codec.Request{Op: op, A: a, B: b})
	return ans.Result, err
}

// Eval computes an expression in the text form, "6 * 7" or "add 2 3", as
// codec.ParseExpr reads it, and returns the result or the calculation's
// error as a *codec.Error. An expression that does not parse is not sent:
// its error is the parser's, code 10 (codec.ErrSyntax) or, for an integer
// operand beyond int64, code 6, as a server would answer it.
func (c *Client) Eval(ctx context.Context, expr string) (codec.Number, error) {
	req, err := codec.ParseExpr(expr)
	if err != nil {
		return codec.Number{}, err
	}
	return c.Calc(ctx, req.Op, req.A, req.B)
}

// Do sends a request and waits for its reply. The reply's Err is always
// nil: a calculation error is returned once, as the error (a
// *codec.Error), with the reply naming the server that refused. See
// Exchange for the retries.
func (c *Client) Do(ctx context.Context, req codec.Request) (codec.Reply, error) {
	ans, err := c.Exchange(ctx, req)
	return codec.Reply{Result: ans.Result, Server: ans.Server}, err
}

// Exchange sends a request and waits for its answer, retransmitting it with
// the same ID when no answer comes in time: after Timeout, then twice that,
// up to 4×Timeout, Retries times. A calculation that fails returns its
// *codec.Error.
//
// A transient error from the proxy ("timeout", "no server available",
// "busy") ends the try: the request is sent again after a pause of a
// quarter of Timeout. A refusal from the network (ICMP port unreachable:
// nothing listens there) ends the try at once; when every proxy has
// refused, the request fails without waiting for the retries. With several
// proxies, each retry goes to the next one.
//
// ctx bounds the whole schedule: at its deadline, the error is a
// *NoAnswerError matching both ErrNoAnswer and context.DeadlineExceeded;
// cancelled, it is ctx.Err(). The Answer carries the ID, tries and latency
// even with an error.
func (c *Client) Exchange(ctx context.Context, req codec.Request) (Answer, error) {
	id := c.nextID.Add(1)
	var buf [codec.MaxDatagram]byte
	pkt := codec.AppendRequest(buf[:0], id, req)
	return c.roundTrip(ctx, id, pkt)
}

// outcome says how a try, or a wait within one, ended.
type outcome int

const (
	answered  outcome = iota // a result or a calculation error
	stopped                  // the context ended or the client closed
	timedOut                 // the timer fired
	transient                // the proxy answered with a transient error
	refused                  // the network said nothing listens at the proxy
)

// attempt is the state of one request across its tries.
type attempt struct {
	c       *Client
	cl      *call
	ans     Answer
	start   time.Time
	first   int32  // the proxy of the first try
	tried   uint64 // bit i: proxy i was tried (proxies past 64 share bit 63)
	refused uint64 // bit i: proxy i refused
	cause   error  // why the latest failed try failed, nil for silence
}

func bit(i int32) uint64 { return 1 << min(i, 63) }

func (c *Client) roundTrip(ctx context.Context, id uint64, pkt []byte) (Answer, error) {
	cl := calls.Get().(*call)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		calls.Put(cl)
		return Answer{ID: id}, ErrClosed
	}
	c.calls[id] = cl
	c.mu.Unlock()
	defer c.forget(id, cl)

	a := attempt{c: c, cl: cl, ans: Answer{ID: id}, start: time.Now()}
	wait := c.cfg.Timeout
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		d, res, err := a.try(ctx, pkt, timer)
		if res == answered || res == stopped {
			return a.end(ctx, d, res, err)
		}
		if len(c.conns) > 1 {
			c.failed(d.from) // the retry, and new requests, go to the next proxy
		}
		if a.ans.Tries > c.cfg.Retries || a.allRefused() {
			return a.end(ctx, d, res, nil)
		}
		if res == transient {
			// The proxy has given up on this try and said so. Pause a
			// little before asking again, so that "no server available"
			// is not asked again at once, but listen meanwhile: an answer
			// to an earlier transmission still counts.
			timer.Reset(min(wait, c.cfg.Timeout/4))
			for res == transient || res == refused {
				if d, res, err = a.await(ctx, timer); res == answered || res == stopped {
					return a.end(ctx, d, res, err)
				}
			}
		}
		wait = min(2*wait, 4*c.cfg.Timeout)
		timer.Reset(wait) // since Go 1.23, Reset needs no Stop and drain first
	}
}

// try sends the request to the current proxy and waits for the timer or
// an answer. The delivery's from names the proxy a failure is blamed on.
func (a *attempt) try(ctx context.Context, pkt []byte, timer *time.Timer) (delivery, outcome, error) {
	at := a.c.cur.Load()
	a.cl.at.Store(at)
	if a.ans.Tries == 0 {
		a.first = at
	}
	a.ans.Tries++
	a.tried |= bit(at)
	// A failed send is handled like a lost datagram, the timer retries,
	// except a refusal: the kernel hands the ICMP error of an earlier
	// datagram, perhaps another call's, to whichever of send or receive
	// comes first, so it goes to every call at that proxy, this one too.
	if _, err := a.c.conns[at].Write(pkt); errors.Is(err, syscall.ECONNREFUSED) {
		a.c.refused(at)
	}
	d, res, err := a.await(ctx, timer)
	if res == timedOut {
		d.from = at
	}
	return d, res, err
}

// await waits for the call's answer until the timer fires.
func (a *attempt) await(ctx context.Context, timer *time.Timer) (delivery, outcome, error) {
	select {
	case <-ctx.Done():
		return delivery{}, stopped, ctx.Err()
	case <-a.c.done:
		return delivery{}, stopped, ErrClosed
	case <-timer.C:
		return delivery{}, timedOut, nil
	case d := <-a.cl.ch:
		switch {
		case d.refused:
			return a.note(d, refused)
		case d.r.Err == nil:
			return d, answered, nil
		case d.r.Err.Code.Transient():
			return a.note(d, transient)
		}
		return d, answered, d.r.Err
	}
}

// note records why a try failed.
func (a *attempt) note(d delivery, res outcome) (delivery, outcome, error) {
	if res == refused {
		a.refused |= bit(d.from)
		a.cause = syscall.ECONNREFUSED
	} else {
		a.cause = d.r.Err
	}
	return d, res, nil
}

func (a *attempt) allRefused() bool {
	if n := len(a.c.conns); n < 64 {
		return a.refused == 1<<n-1
	}
	return a.refused == ^uint64(0)
}

// end makes the call's result from how its last try or wait ended: the
// answer, a calculation error, or why there was none.
func (a *attempt) end(ctx context.Context, d delivery, res outcome, err error) (Answer, error) {
	a.ans.Latency = time.Since(a.start)
	switch {
	case res == answered:
		a.ans.Server, a.ans.Proxy = d.r.Server, a.c.proxy(d.from)
		if err == nil {
			a.ans.Result = d.r.Result
		}
		return a.ans, err
	case res == stopped && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil):
		return a.ans, err
	case res == stopped:
		a.cause = err
	}
	return a.ans, &NoAnswerError{Proxies: a.proxies(), Tries: a.ans.Tries, Cause: a.cause}
}

// proxies lists the proxies tried, in the order of their first try.
func (a *attempt) proxies() []string {
	n := int32(len(a.c.conns))
	var list []string
	for k := range n {
		if i := (a.first + k) % n; a.tried&bit(i) != 0 {
			list = append(list, a.c.proxy(i))
		}
	}
	return list
}
