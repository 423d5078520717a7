//go:build linux

package udpbatch

// Why not golang.org/x/net/ipv4's ReadBatch and WriteBatch, the usual
// choice (STYLE §7)? They allocate a net.Addr for every datagram read, and
// they have no way to ask for UDP GSO and GRO, which is where most of the
// speed is on this path. The system calls are made here directly instead,
// through the socket's RawConn, so the runtime's poller still parks and
// wakes the goroutine.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/discal/discal/internal/netlist"
)

// groBuf is the buffer for one GRO read: the kernel may hand over up to
// 64 KiB of coalesced datagrams at once. Only the pages a read touches
// become resident, so small datagrams cost little memory.
const groBuf = 1 << 16

// maxSegments is the most datagrams one GSO send may carry (UDP_MAX_SEGMENTS
// on older kernels), and maxGSOBytes the most bytes.
const (
	maxSegments = 64
	maxGSOBytes = 65000
)

// mmsg is the state one recvmmsg or sendmmsg works on. The closure is made
// once, so that a call allocates nothing.
type mmsg struct {
	rc    syscall.RawConn
	quiet bool // a Quiet socket's: calls that do not wait, made raw (quiet_linux.go)
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	oobs  [][cmsgSize]byte
	count int // headers handed to the syscall
	n     int // headers the syscall completed
	errno syscall.Errno
	fn    func(fd uintptr) bool // makes the call; false, so that the runtime parks us, while the socket is not ready
	now   func(fd uintptr) bool // makes the call once, ready or not
}

// cmsgSize holds one control message with an int: UDP_GRO on reads,
// UDP_SEGMENT (a uint16, padded) on writes.
const cmsgSize = 24

func (m *mmsg) init(rc syscall.RawConn, size int, trap uintptr) {
	m.rc = rc
	m.hdrs = make([]unix.Mmsghdr, size)
	m.iovs = make([]unix.Iovec, size)
	m.names = make([]unix.RawSockaddrInet6, size)
	m.oobs = make([][cmsgSize]byte, size)
	m.fn = func(fd uintptr) bool {
		for {
			var n uintptr
			var errno syscall.Errno
			if m.quiet {
				n, errno = m.quietCall(trap, fd)
			} else {
				n, _, errno = unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(m.count), 0, 0, 0)
			}
			switch errno {
			case unix.EINTR:
				continue // interrupted before it moved anything: again at once
			case unix.EAGAIN:
				return false // not ready: the runtime parks us until it is
			}
			m.n, m.errno = int(n), errno
			return true
		}
	}
	m.now = func(fd uintptr) bool {
		if !m.fn(fd) {
			m.n, m.errno = 0, unix.EAGAIN
		}
		return true
	}
}

// newReader reads a *net.UDPConn with recvmmsg and GRO, anything else
// through the portable path.
func newReader(c net.PacketConn, opt Options) batchReader {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return newPacketReader(c, opt)
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return newPacketReader(c, opt)
	}
	r := &mmsgReader{opt: opt}
	r.init(rc)
	return r
}

// newWriter writes a *net.UDPConn with sendmmsg and GSO, anything else
// through the portable path.
func newWriter(c net.PacketConn, opt Options) batchWriter {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return packetWriter{c}
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return packetWriter{c}
	}
	w := &mmsgWriter{opt: opt}
	w.init(rc)
	return w
}

type mmsgReader struct {
	opt   Options
	m     mmsg
	zones map[uint32]string // interface index -> zone, made once per interface
	gro   bool
	bufs  [][]byte
	out   []Message // datagrams read and not yet returned
	head  int
}

// init sets the socket up and the reader's buffers.
func (r *mmsgReader) init(rc syscall.RawConn) {
	r.m.init(rc, r.opt.Batch, unix.SYS_RECVMMSG)
	_ = r.m.rc.Control(func(fd uintptr) {
		// Room for bursts; capped by net.core.rmem_max.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		if r.opt.NoGRO {
			// Off, in case another reader of this socket turned it on.
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0)
			return
		}
		r.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	size := r.opt.MaxSize + 1
	if r.gro {
		size = groBuf
	}
	r.bufs = make([][]byte, r.opt.Batch)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
	}
	r.out = make([]Message, 0, r.opt.Batch*maxSegments)
}

// ReadBatch returns what the last recvmmsg left, or makes another.
func (r *mmsgReader) ReadBatch(ms []Message) (int, error) {
	if r.head == len(r.out) {
		if err := r.fill(r.m.fn); err != nil {
			return 0, err
		}
	}
	n := copy(ms, r.out[r.head:])
	r.head += n
	return n, nil
}

// ReadReady is ReadBatch without the wait: recvmmsg once, whatever it
// finds.
func (r *mmsgReader) ReadReady(ms []Message) (int, error) {
	if r.head == len(r.out) {
		if err := r.fill(r.m.now); err != nil {
			return 0, err
		}
	}
	n := copy(ms, r.out[r.head:])
	r.head += n
	return n, nil
}

// fill makes one recvmmsg through call and splits what GRO coalesced.
func (r *mmsgReader) fill(call func(uintptr) bool) error {
	m := &r.m
	m.count = len(r.bufs)
	for i := range m.count {
		h := &m.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
		h.Control = &m.oobs[i][0]
		h.SetControllen(cmsgSize)
		h.Flags = 0
		m.iovs[i].Base = &r.bufs[i][0]
		m.iovs[i].SetLen(len(r.bufs[i]))
	}
	if err := m.rc.Read(call); err != nil {
		return err
	}
	r.out, r.head = r.out[:0], 0
	switch m.errno {
	case 0:
	case unix.EAGAIN:
		return nil // nothing there, and not waited for
	default:
		return &net.OpError{Op: "recvmmsg", Net: "udp", Err: m.errno}
	}
	if r.opt.Buffers != nil {
		r.opt.Buffers.Add(uint64(m.n))
	}
	limit := r.opt.MaxSize + 1
	for i := range m.n {
		h := &m.hdrs[i].Hdr
		data := r.bufs[i][:m.hdrs[i].Len]
		addr := r.parseSockaddr(&m.names[i])
		seg := 0
		if r.gro && h.Controllen > 0 {
			seg = groSize(&m.oobs[i])
		}
		if seg <= 0 || seg >= len(data) {
			r.out = append(r.out, Message{Buf: data[:min(len(data), limit)], Addr: addr})
			continue
		}
		for len(data) > 0 {
			d := data[:min(seg, len(data))]
			data = data[len(d):]
			r.out = append(r.out, Message{Buf: d[:min(len(d), limit)], Addr: addr})
		}
	}
	return nil
}

// groSize reads the segment size from a UDP_GRO control message.
func groSize(oob *[cmsgSize]byte) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if h.Level != unix.SOL_UDP || h.Type != unix.UDP_GRO || uint64(h.Len) < uint64(unix.CmsgLen(4)) {
		return 0
	}
	return int(*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])))
}

type mmsgWriter struct {
	opt    Options
	m      mmsg
	family int
	gso    atomic.Bool // cleared for good the first time the kernel refuses GSO
	group  []int       // the group of each message
	groups []group
	iovAt  []int // where each group's iovecs start
	hdrOf  []int // the group of each header (groups the socket cannot address have none)
}

// group is a run of datagrams of one size to one address: one GSO send.
type group struct {
	addr  netip.AddrPort
	size  int
	count int
}

func (w *mmsgWriter) init(rc syscall.RawConn) {
	w.m.init(rc, w.opt.Batch, unix.SYS_SENDMMSG)
	w.family = unix.AF_INET6
	_ = w.m.rc.Control(func(fd uintptr) {
		if d, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil {
			w.family = d
		}
	})
	w.gso.Store(!w.opt.NoGSO)
	w.group = make([]int, w.opt.Batch)
	w.groups = make([]group, 0, w.opt.Batch)
	w.iovAt = make([]int, w.opt.Batch)
	w.hdrOf = make([]int, w.opt.Batch)
}

// WriteBatch sends every message. Datagrams of one size to one address go
// as one GSO send.
func (w *mmsgWriter) WriteBatch(ms []Message) (int, error) {
	done := 0
	for done < len(ms) {
		n, err := w.writeChunk(ms[done:min(len(ms), done+w.opt.Batch)])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (w *mmsgWriter) writeChunk(ms []Message) (int, error) {
	gso := w.gso.Load()
	// Assign each message to a group.
	w.groups = w.groups[:0]
	for i := range ms {
		size := len(ms[i].Buf)
		g := -1
		if gso && size > 0 {
			for j := range w.groups {
				x := &w.groups[j]
				if x.size == size && x.addr == ms[i].Addr && x.count < maxSegments && (x.count+1)*size <= maxGSOBytes {
					g = j
					break
				}
			}
		}
		if g < 0 {
			w.groups = append(w.groups, group{addr: ms[i].Addr, size: size})
			g = len(w.groups) - 1
		}
		w.groups[g].count++
		w.group[i] = g
	}
	// Lay out each group's iovecs together, in message order.
	at := 0
	for j := range w.groups {
		w.iovAt[j] = at
		at += w.groups[j].count
	}
	m := &w.m
	for i := range ms {
		j := w.group[i]
		iov := &m.iovs[w.iovAt[j]]
		w.iovAt[j]++
		iov.Base = unsafe.SliceData(ms[i].Buf)
		iov.SetLen(len(ms[i].Buf))
	}
	// One header per group; skip what this socket cannot address.
	m.count = 0
	skipped := 0
	at = 0
	for j := range w.groups {
		g := &w.groups[j]
		first := at
		at += g.count
		h := &m.hdrs[m.count].Hdr
		*h = unix.Msghdr{}
		if g.addr.IsValid() {
			n := putSockaddr(&m.names[m.count], g.addr, w.family)
			if n == 0 {
				skipped += g.count
				continue
			}
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(&m.names[m.count])), n
		}
		h.Iov = &m.iovs[first]
		h.SetIovlen(g.count)
		if g.count > 1 {
			putSegment(&m.oobs[m.count], g.size)
			h.Control = &m.oobs[m.count][0]
			h.SetControllen(unix.CmsgSpace(2))
		}
		w.hdrOf[m.count] = j
		m.count++
	}
	return w.send(ms, skipped)
}

// send makes sendmmsg calls until every header is handled.
func (w *mmsgWriter) send(ms []Message, handled int) (int, error) {
	m := &w.m
	hdrs, total := m.hdrs, m.count
	retried := -1 // the header already sent again after ECONNREFUSED
	for start := 0; start < total; {
		m.hdrs = hdrs[start:]
		m.count = total - start
		err := m.rc.Write(m.fn)
		m.hdrs = hdrs
		if err != nil {
			return handled, err
		}
		if m.errno == 0 {
			for k := start; k < start+m.n; k++ {
				handled += w.groups[w.hdrOf[k]].count
			}
			start += m.n
			continue
		}
		// sendmmsg fails only on the first header it could not send.
		switch {
		case m.errno == unix.EBADF || m.errno == unix.ENOTSOCK:
			return handled, &net.OpError{Op: "sendmmsg", Net: "udp", Err: m.errno}
		case m.errno == unix.ECONNREFUSED && retried != start:
			// On a connected socket this is an ICMP error left over from an
			// earlier datagram, reported on this one: send it again, once.
			retried = start
		case hdrs[start].Hdr.Control != nil && (m.errno == unix.EIO || m.errno == unix.EINVAL || m.errno == unix.ENOPROTOOPT):
			// No GSO here (an old kernel, or a device without it): from now
			// on every datagram gets its own header. Send again what this
			// call left, a rare path that may allocate.
			w.gso.Store(false)
			unsent := make(map[int]bool)
			for k := start; k < total; k++ {
				unsent[w.hdrOf[k]] = true
			}
			var rest []Message
			for i := range ms {
				if unsent[w.group[i]] {
					rest = append(rest, ms[i])
				}
			}
			n, err := w.writeChunk(rest)
			return handled + n, err
		default:
			handled += w.groups[w.hdrOf[start]].count // refused: skip it
			start++
		}
	}
	return handled, nil
}

func putSegment(oob *[cmsgSize]byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
}

// parseSockaddr reads a peer's address. A link-local peer's zone is the
// index of the interface it came in on, in decimal, as the kernel gives it:
// a name would be looked up in the process's network namespace, which need
// not be the socket's.
func (r *mmsgReader) parseSockaddr(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	switch rsa.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&rsa.Port))[:])
		a := netip.AddrFrom16(rsa.Addr)
		if rsa.Scope_id != 0 {
			a = a.WithZone(r.zone(rsa.Scope_id))
		}
		return unmap(netip.AddrPortFrom(a, port))
	}
	return netip.AddrPort{}
}

// zone returns the zone for interface index, made once so that reading
// from a link-local peer does not allocate.
func (r *mmsgReader) zone(index uint32) string {
	z, ok := r.zones[index]
	if !ok {
		if r.zones == nil {
			r.zones = make(map[uint32]string)
		}
		z = strconv.FormatUint(uint64(index), 10)
		r.zones[index] = z
	}
	return z
}

// putSockaddr writes a in the socket's family and returns its length, or 0
// when a socket of that family cannot send to it.
func putSockaddr(rsa *unix.RawSockaddrInet6, a netip.AddrPort, family int) uint32 {
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], a.Port())
	if family == unix.AF_INET {
		if !a.Addr().Unmap().Is4() {
			return 0
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Addr().Unmap().As4()}
		sa.Port = *(*uint16)(unsafe.Pointer(&port))
		return unix.SizeofSockaddrInet4
	}
	*rsa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.Addr().As16()}
	if z := a.Addr().Zone(); z != "" {
		// Without its interface the kernel refuses a link-local peer. A
		// zone read from a socket is a number; one from a flag may be a
		// name, looked up in the process's namespace.
		rsa.Scope_id = uint32(netlist.ZoneIndex(z))
	}
	rsa.Port = *(*uint16)(unsafe.Pointer(&port))
	return unix.SizeofSockaddrInet6
}
