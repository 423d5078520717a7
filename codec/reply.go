package codec

import "github.com/vmihailenco/msgpack/v5"

// Reply is a server's answer: a result, or an error. Its body on the wire is
// {"result": 42, "server": "s1"} or
// {"code": 5, "error": "division by zero", "server": "s1"}; "server" names the
// server that computed it and is absent when the proxy itself answers.
type Reply struct {
	Result Number
	Err    *Error // nil when the reply carries a result
	Server string
}

// AppendReply appends a whole reply datagram, header and body, to dst.
func AppendReply(dst []byte, id uint64, r Reply) []byte {
	dst = AppendHeader(dst, KindReply, id)
	return AppendReplyBody(dst, r)
}

// AppendReplyBody appends only the body of a reply.
func AppendReplyBody(dst []byte, r Reply) []byte {
	return encode(dst, func(e *msgpack.Encoder) {
		n := 1
		if r.Err != nil {
			n = 2
		}
		if r.Server != "" {
			n++
		}
		_ = e.EncodeMapLen(n)
		if r.Err != nil {
			_ = e.EncodeString("code")
			_ = e.EncodeUint(uint64(r.Err.Code))
			_ = e.EncodeString("error")
			_ = e.EncodeString(r.Err.Message)
		} else {
			_ = e.EncodeString("result")
			encodeNumber(e, r.Result)
		}
		if r.Server != "" {
			_ = e.EncodeString("server")
			_ = e.EncodeString(r.Server)
		}
	})
}

// DecodeReply decodes a reply body. A reply with both a result and an error
// is taken as the error; one with neither is malformed. A server name or an
// error message that is not printable text refuses the whole reply with an
// error that wraps ErrBadText (see CheckName, CheckMessage).
func DecodeReply(body []byte) (Reply, error) {
	x := getDecoder(body)
	defer putDecoder(x)
	n, err := x.mapLen()
	if err != nil {
		return Reply{}, err
	}
	var r Reply
	var haveResult, haveCode, haveError bool
	var code uint64
	var msg string
	for range n {
		key, _, err := x.str()
		if err != nil {
			return Reply{}, err
		}
		switch string(key) {
		case "result":
			v, ok, err := x.number()
			if err != nil {
				return Reply{}, err
			}
			if !ok {
				return Reply{}, Errorf(CodeWrongType, `wrong type: "result" must be a number`)
			}
			r.Result, haveResult = v, true
		case "code":
			c, ok, err := x.uint()
			if err != nil {
				return Reply{}, err
			}
			if !ok || c > 0xffff {
				return Reply{}, Errorf(CodeWrongType, `wrong type: "code" must be a small unsigned integer`)
			}
			code, haveCode = c, true
		case "error":
			s, ok, err := x.longStr()
			if err != nil {
				return Reply{}, err
			}
			if !ok {
				return Reply{}, Errorf(CodeWrongType, `wrong type: "error" must be a string`)
			}
			if err := CheckMessage(s); err != nil {
				return Reply{}, err
			}
			msg, haveError = s, true
		case "server":
			s, ok, err := x.name()
			if err != nil {
				return Reply{}, err
			}
			if !ok {
				return Reply{}, Errorf(CodeWrongType, `wrong type: "server" must be a string`)
			}
			r.Server = s
		default:
			if err := x.skip(); err != nil {
				return Reply{}, err
			}
		}
	}
	if err := x.end(); err != nil {
		return Reply{}, err
	}
	switch {
	case haveCode || haveError:
		if msg == "" {
			msg = "error " + IntNumber(int64(code)).String()
		}
		r.Err = &Error{Code: Code(code), Message: msg}
		r.Result = Number{}
	case !haveResult:
		return Reply{}, Errorf(CodeMissingField, `missing field "result"`)
	}
	return r, nil
}
