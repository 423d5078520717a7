package codec

import "github.com/vmihailenco/msgpack/v5"

// Join is a server's announcement to a proxy: route work to me. It is sent
// from the server's status port, so the proxy learns the status address
// from the datagram's source and the calculator address from the same host
// and CalcPort, which the server's status replies confirm (Status.CalcPort).
// The server repeats it every second or so; the proxy answers each one it
// takes with a KindJoinAck carrying the join's ID. Name is for the proxy's
// log; the proxy goes by the name the status replies give.
type Join struct {
	CalcPort uint16
	Name     string
}

// AppendJoin appends a whole join datagram to dst.
func AppendJoin(dst []byte, id uint64, j Join) []byte {
	dst = AppendHeader(dst, KindJoin, id)
	return encode(dst, func(e *msgpack.Encoder) {
		_ = e.EncodeMapLen(2)
		_ = e.EncodeString("calc_port")
		_ = e.EncodeUint(uint64(j.CalcPort))
		_ = e.EncodeString("name")
		_ = e.EncodeString(j.Name)
	})
}

// AppendJoinAck appends a join acknowledgement: a header with the join's ID.
func AppendJoinAck(dst []byte, id uint64) []byte {
	return AppendHeader(dst, KindJoinAck, id)
}

// DecodeJoin decodes a join body. The calculator port is required and may
// not be 0. A name that is not printable text refuses the join with an
// error that wraps ErrBadText (see CheckName).
func DecodeJoin(body []byte) (Join, error) {
	x := getDecoder(body)
	defer putDecoder(x)
	n, err := x.mapLen()
	if err != nil {
		return Join{}, err
	}
	var j Join
	for range n {
		key, _, err := x.str()
		if err != nil {
			return Join{}, err
		}
		ok := true
		switch string(key) {
		case "calc_port":
			var v uint64
			if v, ok, err = x.uint(); ok && (v == 0 || v > 65535) {
				ok = false
			}
			j.CalcPort = uint16(v)
		case "name":
			j.Name, ok, err = x.name()
		default:
			err = x.skip()
		}
		if err != nil {
			return Join{}, err
		}
		if !ok {
			return Join{}, Errorf(CodeWrongType, "wrong type: join field %q", key)
		}
	}
	if j.CalcPort == 0 {
		return Join{}, Errorf(CodeMalformed, "malformed request: join without calc_port")
	}
	return j, x.end()
}
