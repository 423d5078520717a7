// Command statusfleet answers discal status polls on N UDP ports, each
// with a fixed report of an idle server, and does nothing else: it stands
// in for a fleet of servers when what is measured is what polling them
// costs an idle udpproxy (bench/idlepair.sh). Its calculator ports are
// never opened; an idle proxy does not use them.
//
//	statusfleet -base 20001 -n 1000 -secs 60   # status ports 20001-21000
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/discal/discal/codec"
)

func main() {
	base := flag.Int("base", 20001, "first status port")
	n := flag.Int("n", 1000, "how many status ports")
	secs := flag.Int("secs", 60, "exit after this many seconds")
	flag.Parse()
	for i := range *n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *base + i})
		if err != nil {
			fmt.Fprintln(os.Stderr, "statusfleet:", err)
			os.Exit(1)
		}
		go answer(c, codec.Status{Server: "f" + strconv.Itoa(i), HostCPU: 5, ProcCPU: 1, Cores: 2, HostCores: 2})
	}
	fmt.Println("statusfleet: ready")
	time.Sleep(time.Duration(*secs) * time.Second)
}

// answer answers every status query on c with st.
func answer(c *net.UDPConn, st codec.Status) {
	buf := make([]byte, codec.MaxDatagram)
	var out []byte
	for {
		k, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		h, err := codec.ParseHeader(buf[:k])
		if err != nil || h.Kind != codec.KindStatusQuery {
			continue
		}
		st.Uptime = time.Second
		out = codec.AppendStatus(out[:0], h.ID, st)
		_, _ = c.WriteToUDPAddrPort(out, from)
	}
}
