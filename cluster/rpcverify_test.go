package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// frame encodes one Raft RPC as hashicorp/raft's NetworkTransport sends it.
func frame(tb testing.TB, typ byte, req any, payload []byte) []byte {
	tb.Helper()
	var b bytes.Buffer
	b.WriteByte(typ)
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(req); err != nil {
		tb.Fatal(err)
	}
	b.Write(payload)
	return b.Bytes()
}

func hdr(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

func appendEntries(id, addr string, entries, size int) *raft.AppendEntriesRequest {
	//lint:ignore SA1019 the attacker fills the legacy field too: rpcverify checks it against the header
	req := &raft.AppendEntriesRequest{RPCHeader: hdr(id, addr), Term: 7, Leader: []byte(addr), PrevLogEntry: 10, PrevLogTerm: 6, LeaderCommitIndex: 10}
	for i := range entries {
		req.Entries = append(req.Entries, &raft.Log{Index: uint64(11 + i), Term: 7, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return req
}

// scanAll feeds stream to a scanner in chunks of the given size.
func scanAll(want string, stream []byte, chunk int) error {
	s := rpcScanner{want: want}
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		if err := s.scan(stream[:n]); err != nil {
			return err
		}
		stream = stream[n:]
	}
	if s.phase != phaseType {
		return errors.New("stream ended inside a request")
	}
	return nil
}

func TestRPCScannerAcceptsWhatRaftSends(t *testing.T) {
	const addr = "10.0.0.1:7000"
	var stream []byte
	stream = append(stream, frame(t, rpcAppendEntries, appendEntries("node-1", addr, 3, 40), nil)...)
	stream = append(stream, frame(t, rpcAppendEntries, appendEntries("node-1", addr, 0, 0), nil)...) // heartbeat
	//lint:ignore SA1019 the attacker fills the legacy field too: rpcverify checks it against the header
	stream = append(stream, frame(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("node-1", addr), Term: 8, Candidate: []byte(addr), LastLogIndex: 13, LastLogTerm: 7}, nil)...)
	stream = append(stream, frame(t, rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr("node-1", addr), Term: 8}, nil)...)
	stream = append(stream, frame(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("node-1", addr)}, nil)...)
	// A snapshot whose bytes look like anything at all, then more RPCs.
	snap := append([]byte{0x00, 0xc1, 0xff}, frame(t, rpcAppendEntries, appendEntries("evil", addr, 1, 1), nil)...)
	stream = append(stream, frame(t, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("node-1", addr), Term: 8, Leader: []byte(addr), Size: int64(len(snap))}, snap)...)
	stream = append(stream, frame(t, rpcAppendEntries, appendEntries("node-1", addr, 2, 5), nil)...)
	for _, chunk := range []int{1, 2, 3, 7, 64, 4096, len(stream)} {
		if err := scanAll("node-1", stream, chunk); err != nil {
			t.Errorf("chunks of %d bytes: got %v, want every request accepted", chunk, err)
		}
	}
}

func TestRPCScannerRefusesForgedRequests(t *testing.T) {
	const addr = "10.0.0.1:7000"
	raw := func(b ...byte) []byte { return b }
	fixstr := func(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
	cases := map[string][]byte{
		"another node's id in AppendEntries": frame(t, rpcAppendEntries, appendEntries("node-0", addr, 2, 8), nil),
		"another node's id in RequestVote":   frame(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("node-0", addr), Term: 99}, nil),
		"another node's id in TimeoutNow":    frame(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("node-0", addr)}, nil),
		"another node's id in a snapshot":    frame(t, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("node-0", addr), Size: 3}, []byte("abc")),
		"no id":                              frame(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("", addr)}, nil),
		//lint:ignore SA1019 the attacker fills the legacy field too: rpcverify checks it against the header
		"two addresses":    frame(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("node-1", addr), Leader: []byte("10.0.0.9:7000")}, nil),
		"unknown RPC type": raw(9),
		// {"ID": "node-1", "ID": "node-0"}: the decoder keeps the last one.
		"a second ID key": append(raw(rpcTimeoutNow, 0x82), append(append(fixstr("ID"), fixstr("node-1")...), append(fixstr("ID"), fixstr("node-0")...)...)...),
		// The same fields as an array: no names to check.
		"a request encoded as an array": append(raw(rpcTimeoutNow, 0x93, 0x03), append(fixstr("node-1"), fixstr(addr)...)...),
		"an id that is not a string":    append(raw(rpcTimeoutNow, 0x81), append(fixstr("ID"), 0x91, 0x01)...),
		"a snapshot without size":       append(raw(rpcInstallSnapshot, 0x81), append(fixstr("ID"), fixstr("node-1")...)...),
		"a negative snapshot size":      append(raw(rpcInstallSnapshot, 0x82), append(append(fixstr("ID"), fixstr("node-1")...), append(fixstr("Size"), 0xff)...)...),
	}
	for name, stream := range cases {
		if err := scanAll("node-1", stream, 5); err == nil {
			t.Errorf("%s: accepted; want refused", name)
		}
	}
}

// TestRPCVerifierHoldsTheLastByte checks that a forged request never
// reaches Raft whole: a request whose fault shows only at its end ({"Term":
// 5, "Addr": "a:1"}, no sender id) passes but for its last byte, which is
// refused.
func TestRPCVerifierHoldsTheLastByte(t *testing.T) {
	forged := []byte{rpcTimeoutNow, 0x82, 0xa4, 'T', 'e', 'r', 'm', 0x05, 0xa4, 'A', 'd', 'd', 'r', 0xa3, 'a', ':', '1'}
	s := rpcScanner{want: "node-1"}
	if err := s.scan(forged[:len(forged)-1]); err != nil {
		t.Fatalf("all but the last byte: %v; want accepted so far", err)
	}
	if err := s.scan(forged[len(forged)-1:]); err == nil {
		t.Fatalf("the last byte: accepted; want the request refused")
	}
}

// BenchmarkRPCVerifier measures the scanner on AppendEntries batches as
// the leader sends them under load (512 entries of 256 bytes).
func BenchmarkRPCVerifier(b *testing.B) {
	for _, n := range []int{0, 64, 512} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			msg := frame(b, rpcAppendEntries, appendEntries("node-1", "10.0.0.1:7000", n, 256), nil)
			s := rpcScanner{want: "node-1"}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i := 0; i < len(msg); i += 32 << 10 {
					if err := s.scan(msg[i:min(i+32<<10, len(msg))]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
