package codec

import (
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Status is a server's answer to a status query: what the proxy weighs when
// it chooses a server. Its body on the wire is a map with the keys named in
// the field comments; unknown keys are skipped, so fields can be added.
type Status struct {
	Server   string        // "server": the server's name
	HostCPU  float64       // "host_cpu": percent of all the host's cores in use, 0-100
	ProcCPU  float64       // "proc_cpu": percent of one core used by the server process, 0-100*cores
	Cores    int           // "cores": logical cores the server may use
	InFlight int           // "in_flight": requests being computed right now
	Served   uint64        // "served": requests answered since start
	Errors   uint64        // "errors": of those, answered with an error
	Dropped  uint64        // "dropped": datagrams not answered: malformed, or from a source not allowed
	Uptime   time.Duration // "uptime_ms": time since start, in milliseconds
	Draining bool          // "draining": the server is going away; send it no new work
	// "host_id": names the machine the server runs on, the same for every
	// server there, so that the proxy knows which servers share a host CPU
	// figure. Empty when unknown.
	HostID string
	// "proc_id": names the server's process, unique across hosts and
	// restarts (a random number made when the process starts; a PID would
	// not do, every container's server being PID 1). Servers in one process
	// (cmd/discal) report one, and share a process CPU figure too.
	ProcID string
	// "host_cores": logical cores of the host, to weigh its CPU figure.
	HostCores int
	// "calc_port": the port of the server's calculator socket, so that a
	// proxy can check a join's claim (see Join). 0 when unknown.
	CalcPort uint16
}

// StatusQuerySize is the size of the status queries AppendStatusQuery
// writes. A status reply is a few hundred bytes, and a server answers only
// a query at least a tenth the size of its answer (MaxAmplification), so a
// query is padded; 64 bytes covers any reply up to 640.
const StatusQuerySize = 64

// AppendStatusQuery appends a status query datagram: a header and zero
// bytes of padding up to StatusQuerySize. A server ignores what follows the
// header.
func AppendStatusQuery(dst []byte, id uint64) []byte {
	dst = AppendHeader(dst, KindStatusQuery, id)
	return append(dst, statusPad[:]...)
}

var statusPad [StatusQuerySize - HeaderSize]byte

// AppendStatus appends a whole status reply datagram to dst.
func AppendStatus(dst []byte, id uint64, s Status) []byte {
	dst = AppendHeader(dst, KindStatusReply, id)
	return encode(dst, func(e *msgpack.Encoder) {
		n := 9
		if s.HostID != "" {
			n += 3
		}
		if s.Draining {
			n++
		}
		if s.CalcPort != 0 {
			n++
		}
		_ = e.EncodeMapLen(n)
		_ = e.EncodeString("server")
		_ = e.EncodeString(s.Server)
		_ = e.EncodeString("host_cpu")
		_ = e.EncodeFloat64(s.HostCPU)
		_ = e.EncodeString("proc_cpu")
		_ = e.EncodeFloat64(s.ProcCPU)
		_ = e.EncodeString("cores")
		_ = e.EncodeInt(int64(s.Cores))
		_ = e.EncodeString("in_flight")
		_ = e.EncodeInt(int64(s.InFlight))
		_ = e.EncodeString("served")
		_ = e.EncodeUint(s.Served)
		_ = e.EncodeString("errors")
		_ = e.EncodeUint(s.Errors)
		_ = e.EncodeString("dropped")
		_ = e.EncodeUint(s.Dropped)
		_ = e.EncodeString("uptime_ms")
		_ = e.EncodeInt(s.Uptime.Milliseconds())
		if s.Draining {
			_ = e.EncodeString("draining")
			_ = e.EncodeBool(true)
		}
		if s.CalcPort != 0 {
			_ = e.EncodeString("calc_port")
			_ = e.EncodeUint(uint64(s.CalcPort))
		}
		if s.HostID != "" {
			_ = e.EncodeString("host_id")
			_ = e.EncodeString(s.HostID)
			_ = e.EncodeString("proc_id")
			_ = e.EncodeString(s.ProcID)
			_ = e.EncodeString("host_cores")
			_ = e.EncodeInt(int64(s.HostCores))
		}
	})
}

// DecodeStatus decodes a status reply body. Missing fields stay zero. A
// server name that is not printable text refuses the whole reply with an
// error that wraps ErrBadText (see CheckName).
func DecodeStatus(body []byte) (Status, error) {
	x := getDecoder(body)
	defer putDecoder(x)
	n, err := x.mapLen()
	if err != nil {
		return Status{}, err
	}
	var s Status
	for range n {
		key, _, err := x.str()
		if err != nil {
			return Status{}, err
		}
		var ok bool
		switch string(key) {
		case "server":
			s.Server, ok, err = x.name()
		case "host_id":
			s.HostID, ok, err = x.longStr()
		case "proc_id":
			s.ProcID, ok, err = x.longStr()
		case "host_cores":
			var v uint64
			v, ok, err = x.uint()
			s.HostCores = int(min(v, 1<<20))
		case "host_cpu":
			s.HostCPU, ok, err = x.float()
		case "proc_cpu":
			s.ProcCPU, ok, err = x.float()
		case "cores":
			var v uint64
			v, ok, err = x.uint()
			s.Cores = int(min(v, 1<<20))
		case "in_flight":
			var v uint64
			v, ok, err = x.uint()
			s.InFlight = int(min(v, 1<<30))
		case "served":
			s.Served, ok, err = x.uint()
		case "errors":
			s.Errors, ok, err = x.uint()
		case "dropped":
			s.Dropped, ok, err = x.uint()
		case "draining":
			c, perr := x.d.PeekCode()
			if perr != nil || (c != msgpcode.True && c != msgpcode.False) {
				ok, err = false, x.skip()
				break
			}
			s.Draining, err = x.d.DecodeBool()
			ok = err == nil
		case "uptime_ms":
			var v uint64
			v, ok, err = x.uint()
			s.Uptime = time.Duration(min(v, 1<<40)) * time.Millisecond
		case "calc_port":
			var v uint64
			v, ok, err = x.uint()
			ok = ok && v <= 65535
			s.CalcPort = uint16(v)
		default:
			ok, err = true, x.skip()
		}
		if err != nil {
			return Status{}, err
		}
		if !ok {
			return Status{}, Errorf(CodeWrongType, "wrong type: status field %q", key)
		}
	}
	return s, x.end()
}

// AppendStatusText appends the status as one line for people, the answer to
// the text command "status".
func AppendStatusText(dst []byte, s Status) []byte {
	dst = append(dst, "server="...)
	dst = append(dst, s.Server...)
	dst = append(dst, " host_cpu="...)
	dst = strconv.AppendFloat(dst, s.HostCPU, 'f', 1, 64)
	dst = append(dst, "% proc_cpu="...)
	dst = strconv.AppendFloat(dst, s.ProcCPU, 'f', 1, 64)
	dst = append(dst, "% cores="...)
	dst = strconv.AppendInt(dst, int64(s.Cores), 10)
	dst = append(dst, " in_flight="...)
	dst = strconv.AppendInt(dst, int64(s.InFlight), 10)
	dst = append(dst, " served="...)
	dst = strconv.AppendUint(dst, s.Served, 10)
	dst = append(dst, " errors="...)
	dst = strconv.AppendUint(dst, s.Errors, 10)
	dst = append(dst, " dropped="...)
	dst = strconv.AppendUint(dst, s.Dropped, 10)
	dst = append(dst, " uptime="...)
	dst = append(dst, s.Uptime.Round(time.Millisecond).String()...)
	if s.Draining {
		dst = append(dst, " draining"...)
	}
	return append(dst, '\n')
}
