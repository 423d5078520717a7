package codec

// The amplification bound lives here, in one place, for every endpoint that
// answers: a reply is at most MaxAmplification times the size of the
// request it answers, so that spoofing a victim's address gains an attacker
// at most a tenfold flood.

// Fits reports whether an answer of n bytes may be sent to a request of
// reqLen bytes: n is at most MaxAmplification times reqLen. The caller
// passes the request's length explicitly: the length of the datagram the
// answer goes back for, not of any copy made on the way (the proxy's
// forwarded request, a retry).
func Fits(n, reqLen int) bool { return n <= MaxAmplification*reqLen }

// AppendBounded appends the answer r to a request of reqLen bytes, within
// the bound (Fits): a text line ("42\n", "error: ...\n") when text is set,
// otherwise a binary reply with the given ID. When the full answer would be
// larger it is appended in its short form instead: an error with its
// code's standard message (Error.Short), and no server name; a result
// stays the same result. The short form fits the shortest request that
// gets an answer, MinTextRequest bytes of text or a HeaderSize-byte binary
// header, so the result is within the bound for any request discal answers.
func AppendBounded(dst []byte, reqLen int, text bool, id uint64, r Reply) []byte {
	start := len(dst)
	var out []byte
	if text {
		out = AppendTextReply(dst, r)
	} else {
		out = AppendReply(dst, id, r)
	}
	if Fits(len(out)-start, reqLen) {
		return out
	}
	short := Reply{Result: r.Result}
	if r.Err != nil {
		short.Err = r.Err.Short()
	}
	if text {
		return AppendTextReply(out[:start], short)
	}
	return AppendReply(out[:start], id, short)
}
