package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
	"github.com/prometheus/client_golang/prometheus"
)

// errStopped is what system.Serve returns after Shutdown.
var errStopped = errors.New("discal: stopped")

// system is a proxy and its servers in this process, each on sockets
// opened before it starts, so that it is ready when newSystem returns.
type system struct {
	proxy     *udpproxy.Proxy
	proxyConn net.PacketConn
	servers   []*server
}

type server struct {
	*udpserver.Server
	calc, status net.PacketConn
}

// systemConfig says what to start.
type systemConfig struct {
	proxyAddr  string
	serverAddr func(i int) (calc, status string)
	servers    int
	server     udpserver.Config // template: Name and the addresses are filled in
	proxy      udpproxy.Config  // template: Servers is filled in
	httpHosts  []string         // -http-host: names the dashboard answers to
}

func newSystem(cfg systemConfig) (*system, error) {
	s := &system{}
	var addrs []udpproxy.ServerAddr
	for i := range cfg.servers {
		srv, err := newServer(cfg, i)
		if err != nil {
			s.closeSockets()
			return nil, err
		}
		s.servers = append(s.servers, srv)
		addrs = append(addrs, udpproxy.ServerAddr{Calc: srv.calc.LocalAddr().String(), Status: srv.status.LocalAddr().String()})
	}
	pcfg := cfg.proxy
	pcfg.Servers = addrs
	p, err := udpproxy.New(pcfg)
	if err == nil {
		s.proxyConn, err = net.ListenPacket("udp", cfg.proxyAddr)
	}
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.proxy = p
	return s, nil
}

func newServer(cfg systemConfig, i int) (*server, error) {
	scfg := cfg.server
	scfg.Name = fmt.Sprintf("s%d", i+1)
	calcAddr, statusAddr := cfg.serverAddr(i)
	calc, err := net.ListenPacket("udp", calcAddr)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", scfg.Name, err)
	}
	status, err := net.ListenPacket("udp", statusAddr)
	if err != nil {
		calc.Close()
		return nil, fmt.Errorf("server %s: %w", scfg.Name, err)
	}
	srv, err := udpserver.New(scfg)
	if err != nil {
		calc.Close()
		status.Close()
		return nil, err
	}
	return &server{Server: srv, calc: calc, status: status}, nil
}

// closeSockets undoes a newSystem that failed half way.
func (s *system) closeSockets() {
	for _, srv := range s.servers {
		srv.calc.Close()
		srv.status.Close()
	}
	if s.proxyConn != nil {
		s.proxyConn.Close()
	}
}

// Serve runs the servers and the proxy until Shutdown, then returns
// errStopped. If any of them fails, it stops the rest and returns that
// failure.
func (s *system) Serve() error {
	type result struct {
		err, closed error
	}
	results := make(chan result, len(s.servers)+1)
	for _, srv := range s.servers {
		go func() { results <- result{srv.Serve(srv.calc, srv.status), udpserver.ErrServerClosed} }()
	}
	go func() { results <- result{s.proxy.Serve(s.proxyConn), udpproxy.ErrServerClosed} }()
	var failure error
	for range len(s.servers) + 1 {
		r := <-results
		if !errors.Is(r.err, r.closed) && failure == nil {
			failure = r.err
			s.close() // one part down: the whole system stops
		}
	}
	if failure != nil {
		return failure
	}
	return errStopped
}

// Shutdown stops the proxy, letting pending requests finish, then the
// servers.
func (s *system) Shutdown(ctx context.Context) error {
	errs := []error{s.proxy.Shutdown(ctx)}
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func (s *system) close() {
	_ = s.proxy.Close()
	for _, srv := range s.servers {
		_ = srv.Close()
	}
}

// collectors are the metrics of the proxy and every server.
func (s *system) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{s.proxy.Collector()}
	for _, srv := range s.servers {
		cs = append(cs, srv.Collector())
	}
	return cs
}
