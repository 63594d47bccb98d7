package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// rpcVerifier wraps an inbound Raft connection and checks every RPC before
// Raft can act on it: the sender id each request claims (RPCHeader.ID, on
// AppendEntries, RequestVote, RequestPreVote, InstallSnapshot and
// TimeoutNow alike) must be the node id the connection's certificate names,
// and the addresses it claims (RPCHeader.Addr and the deprecated Leader and
// Candidate fields) must agree with each other. A request that fails closes
// the connection.
//
// It reads hashicorp/raft's NetworkTransport framing (a type byte, then
// the request as a msgpack map, then, for InstallSnapshot, Size bytes of
// snapshot) with an incremental msgpack scanner that decodes only the
// header fields and skips everything else in place: nothing is copied or
// allocated per entry. Bytes are handed to Raft as they are scanned, except
// that a request's last byte is released only once the request passed, so
// Raft never holds a whole request that was not checked. The request must
// be a map (msgpack can encode a struct as an array, which would hide the
// field names) and its header fields byte or text strings.
type rpcVerifier struct {
	net.Conn
	s   rpcScanner
	err error
	// refused is told why a connection was closed.
	refused func(error)
}

func newRPCVerifier(c net.Conn, peerID string, refused func(error)) *rpcVerifier {
	return &rpcVerifier{Conn: c, s: rpcScanner{want: peerID}, refused: refused}
}

func (v *rpcVerifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.Conn.Read(p)
	if n > 0 {
		if serr := v.s.scan(p[:n]); serr != nil {
			v.err = fmt.Errorf("cluster: Raft RPC refused: %w", serr)
			_ = v.Conn.Close()
			if v.refused != nil {
				v.refused(v.err)
			}
			return 0, v.err
		}
	}
	return n, err
}

// Raft's RPC type bytes (hashicorp/raft net_transport.go).
const (
	rpcAppendEntries byte = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

const (
	phaseType = iota
	phaseObject
	phasePayload
)

// Fields of a request the scanner captures.
const (
	keyOther = iota
	keyID
	keyAddr
	keyLeader
	keyCandidate
	keySize
)

const (
	roleNone = iota
	roleKey
	roleValue
)

const (
	maxDepth     = 32
	maxKeyLen    = 32
	maxHeaderLen = 256
)

var errMalformed = errors.New("malformed request")

// rpcScanner is the incremental state of rpcVerifier.
type rpcScanner struct {
	want string

	phase   int
	rpcType byte
	payload uint64 // snapshot bytes still to pass

	stack   []uint64 // elements left in each open container
	hdr     [18]byte
	hdrLen  int
	hdrLen0 int
	skip    uint64 // bytes left of the current string, binary or ext
	role    int
	key     int // the top-level key whose value comes next
	cap     []byte
	capOn   bool

	sawID, sawSize          bool
	addr, leader, candidate []byte // reused buffers
	size                    uint64
}

// scan checks the next bytes of the stream.
func (s *rpcScanner) scan(p []byte) error {
	for i := 0; i < len(p); {
		switch s.phase {
		case phaseType:
			t := p[i]
			i++
			if t > rpcRequestPreVote {
				return fmt.Errorf("unknown RPC type %d", t)
			}
			s.rpcType, s.phase = t, phaseObject
		case phasePayload:
			n := min(uint64(len(p)-i), s.payload)
			i += int(n)
			s.payload -= n
			if s.payload == 0 {
				s.phase = phaseType
			}
		case phaseObject:
			if s.skip > 0 {
				n := min(uint64(len(p)-i), s.skip)
				if s.capOn {
					s.cap = append(s.cap, p[i:i+int(n)]...)
				}
				i += int(n)
				s.skip -= n
				if s.skip == 0 {
					if err := s.done(); err != nil {
						return err
					}
				}
				continue
			}
			s.hdr[s.hdrLen] = p[i]
			s.hdrLen++
			i++
			if s.hdrLen == 1 {
				extra, ok := headerExtra(p[i-1])
				if !ok {
					return fmt.Errorf("%w: msgpack byte 0x%02x", errMalformed, p[i-1])
				}
				s.hdrLen0 = 1 + extra
			}
			if s.hdrLen < s.hdrLen0 {
				continue
			}
			s.hdrLen = 0
			if err := s.element(); err != nil {
				return err
			}
		}
	}
	return nil
}

// headerExtra returns how many bytes follow a msgpack type byte before
// the element's payload (length fields, or a number's own bytes).
func headerExtra(b byte) (int, bool) {
	switch {
	case b <= 0xbf || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		return 0, true
	}
	switch b {
	case 0xc4, 0xd9, 0xcc, 0xd0:
		return 1, true
	case 0xc5, 0xda, 0xcd, 0xd1, 0xdc, 0xde:
		return 2, true
	case 0xc6, 0xdb, 0xce, 0xd2, 0xca, 0xdd, 0xdf:
		return 4, true
	case 0xcf, 0xd3, 0xcb:
		return 8, true
	case 0xc7:
		return 2, true
	case 0xc8:
		return 3, true
	case 0xc9:
		return 5, true
	case 0xd4:
		return 2, true
	case 0xd5:
		return 3, true
	case 0xd6:
		return 5, true
	case 0xd7:
		return 9, true
	case 0xd8:
		return 17, true
	}
	return 0, false // 0xc1: never used
}

func (s *rpcScanner) uintN(n int) uint64 {
	b := s.hdr[1 : 1+n]
	switch n {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

// element interprets a complete header in s.hdr.
func (s *rpcScanner) element() error {
	b := s.hdr[0]
	depth := len(s.stack)
	s.role = roleNone
	if depth == 1 {
		if s.stack[0]%2 == 0 {
			s.role = roleKey
		} else {
			s.role = roleValue
		}
	}
	wantText := s.role == roleValue && s.key >= keyID && s.key <= keyCandidate
	wantInt := s.role == roleValue && s.key == keySize
	if depth == 0 && !(b >= 0x80 && b <= 0x8f || b == 0xde || b == 0xdf) {
		return fmt.Errorf("%w: the request is not a msgpack map", errMalformed)
	}
	switch {
	case b <= 0x7f: // positive fixint
		return s.scalarInt(uint64(b), true, wantText, wantInt)
	case b >= 0xe0: // negative fixint
		return s.scalarInt(0, false, wantText, wantInt)
	case b <= 0x8f:
		return s.container(2*uint64(b&0x0f), wantText || wantInt)
	case b <= 0x9f:
		return s.container(uint64(b&0x0f), wantText || wantInt)
	case b <= 0xbf:
		return s.text(uint64(b&0x1f), wantText, wantInt)
	case b == 0xc0: // nil: an absent value
		if wantInt {
			return fmt.Errorf("%w: Size is nil", errMalformed)
		}
		if s.role == roleKey {
			return fmt.Errorf("%w: nil key", errMalformed)
		}
		s.capOn = wantText
		return s.done()
	case b == 0xc4 || b == 0xd9:
		return s.text(s.uintN(1), wantText, wantInt)
	case b == 0xc5 || b == 0xda:
		return s.text(s.uintN(2), wantText, wantInt)
	case b == 0xc6 || b == 0xdb:
		return s.text(s.uintN(4), wantText, wantInt)
	case b == 0xdc:
		return s.container(s.uintN(2), wantText || wantInt)
	case b == 0xdd:
		return s.container(s.uintN(4), wantText || wantInt)
	case b == 0xde:
		return s.container(2*s.uintN(2), wantText || wantInt)
	case b == 0xdf:
		return s.container(2*s.uintN(4), wantText || wantInt)
	case b >= 0xcc && b <= 0xcf:
		return s.scalarInt(s.uintN(1<<(b-0xcc)), true, wantText, wantInt)
	case b >= 0xd0 && b <= 0xd3:
		n := 1 << (b - 0xd0)
		v := s.uintN(n)
		return s.scalarInt(v, v>>(8*n-1)&1 == 0, wantText, wantInt)
	}
	if wantText || wantInt || s.role == roleKey {
		return fmt.Errorf("%w: unexpected value type 0x%02x", errMalformed, b)
	}
	switch b {
	case 0xc7, 0xc8, 0xc9: // ext: length, a type byte, data
		s.skip = s.uintN(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[b])
		if s.skip > 0 {
			return nil
		}
	}
	return s.done() // bool, float, fixext (read whole as a header), empty ext
}

// container opens an array or map of count elements (a map counts keys
// and values).
func (s *rpcScanner) container(count uint64, unexpected bool) error {
	if s.role == roleKey || unexpected {
		return fmt.Errorf("%w: unexpected container", errMalformed)
	}
	if len(s.stack) >= maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errMalformed, maxDepth)
	}
	if count == 0 {
		if len(s.stack) == 0 {
			return s.objectDone()
		}
		return s.done()
	}
	s.stack = append(s.stack, count)
	s.role = roleNone
	return nil
}

// text starts a byte or text string of length bytes: captured when it is
// a top-level key or a header value, skipped otherwise.
func (s *rpcScanner) text(length uint64, wantText, wantInt bool) error {
	switch {
	case s.role == roleKey:
		s.capOn = length <= maxKeyLen
	case wantInt:
		return fmt.Errorf("%w: Size is not an integer", errMalformed)
	case wantText:
		if length > maxHeaderLen {
			return fmt.Errorf("%w: header field of %d bytes", errMalformed, length)
		}
		s.capOn = true
	default:
		s.capOn = false
	}
	s.skip = length
	if length == 0 {
		return s.done()
	}
	return nil
}

func (s *rpcScanner) scalarInt(v uint64, nonNeg, wantText, wantInt bool) error {
	switch {
	case s.role == roleKey || wantText:
		return fmt.Errorf("%w: unexpected integer", errMalformed)
	case wantInt:
		if !nonNeg {
			return fmt.Errorf("%w: negative Size", errMalformed)
		}
		s.size, s.sawSize = v, true
	}
	return s.done()
}

// done closes the current element: a key names the value that follows, a
// header value is checked, and containers whose last element this was
// close too.
func (s *rpcScanner) done() error {
	switch s.role {
	case roleKey:
		s.key = keyOther
		if s.capOn {
			switch string(s.cap) {
			case "ID":
				s.key = keyID
			case "Addr":
				s.key = keyAddr
			case "Leader":
				s.key = keyLeader
			case "Candidate":
				s.key = keyCandidate
			case "Size":
				s.key = keySize
			}
		}
	case roleValue:
		if s.capOn {
			if err := s.header(); err != nil {
				return err
			}
		}
		s.key = keyOther
	}
	s.role, s.capOn, s.cap = roleNone, false, s.cap[:0]
	for len(s.stack) > 0 {
		top := &s.stack[len(s.stack)-1]
		*top--
		if *top > 0 {
			return nil
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
	return s.objectDone()
}

// header checks one captured header field.
func (s *rpcScanner) header() error {
	switch s.key {
	case keyID:
		if string(s.cap) != s.want {
			return fmt.Errorf("%w: the RPC claims to come from node %q, the connection's certificate names node %q", ErrIdentity, s.cap, s.want)
		}
		s.sawID = true
	case keyAddr:
		s.addr = append(s.addr[:0], s.cap...)
	case keyLeader:
		s.leader = append(s.leader[:0], s.cap...)
	case keyCandidate:
		s.candidate = append(s.candidate[:0], s.cap...)
	}
	return nil
}

// objectDone checks a whole request and moves on to its payload or the
// next request.
func (s *rpcScanner) objectDone() error {
	if !s.sawID {
		return fmt.Errorf("%w: the RPC names no sender id (the certificate names node %q)", ErrIdentity, s.want)
	}
	var addr []byte
	for _, a := range [][]byte{s.addr, s.leader, s.candidate} {
		if len(a) == 0 {
			continue
		}
		if addr != nil && !bytes.Equal(a, addr) {
			return fmt.Errorf("%w: node %q claims two addresses, %q and %q", ErrIdentity, s.want, addr, a)
		}
		addr = a
	}
	s.phase = phaseType
	if s.rpcType == rpcInstallSnapshot {
		if !s.sawSize {
			return fmt.Errorf("%w: InstallSnapshot without Size", errMalformed)
		}
		if s.size > 0 {
			s.phase, s.payload = phasePayload, s.size
		}
	}
	s.sawID, s.sawSize, s.size, s.key = false, false, 0, keyOther
	s.addr, s.leader, s.candidate = s.addr[:0], s.leader[:0], s.candidate[:0]
	return nil
}
