package clusterrpc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/sessiond/sessiond/api/clusterrpc"
	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}

func TestUnauthenticatedCallsAreRefused(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, _ := leaderOf(t, nodes)
	ctx := ctxT(t, 10*time.Second)
	addr := leader.srv.Listener.Addr().String()
	before, _ := leader.node.Servers()
	td := clustertest.TestPKI(t).TrustDomain
	as := func(id pki.Identity, token string) clusterv1connect.ClusterServiceClient {
		return clusterrpc.NewClient(addr, clusterrpc.ClientOptions{HTTPClient: clientAs(t, id), Scheme: "https", Token: token})
	}
	join := func(c clusterv1connect.ClusterServiceClient) error {
		_, err := c.Join(ctx, connect.NewRequest(&clusterv1.JoinRequest{NodeId: "intruder", RaftAddr: "127.0.0.1:1", Voter: true}))
		return err
	}
	for _, tc := range []struct {
		name                 string
		client               clusterv1connect.ClusterServiceClient
		wantStatus, wantJoin connect.Code
	}{
		{"no credential", as(pki.Identity{}, ""), connect.CodeUnauthenticated, connect.CodeUnauthenticated},
		{"a bearer that is no operator token", as(pki.Identity{}, "test-cluster-secret-of-32-bytes-or-more"), connect.CodeUnauthenticated, connect.CodeUnauthenticated},
		{"a service certificate", as(pki.Identity{TrustDomain: td, Kind: pki.KindService, Name: "billing"}, ""), connect.CodePermissionDenied, connect.CodePermissionDenied},
		// Nodes talk to each other over the peer listener, never here: a
		// node certificate may read the status and nothing more.
		{"a node certificate", as(pki.Identity{TrustDomain: td, Kind: pki.KindNode, Name: "rogue-1"}, ""), 0, connect.CodePermissionDenied},
	} {
		_, err := tc.client.Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
		if (tc.wantStatus == 0 && err != nil) || (tc.wantStatus != 0 && codeOf(err) != tc.wantStatus) {
			t.Errorf("%s: Status: got %v, want code %v", tc.name, err, tc.wantStatus)
		}
		if err := join(tc.client); codeOf(err) != tc.wantJoin {
			t.Errorf("%s: Join: got %v, want %v", tc.name, err, tc.wantJoin)
		}
	}
	after, _ := leader.node.Servers()
	if len(after) != len(before) {
		t.Errorf("servers after refused Join: got %d, want %d (unchanged)", len(after), len(before))
	}
}

func TestStatusThroughFollower(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 10*time.Second)
	resp, err := followers[0].client.Status(ctx, connect.NewRequest(&clusterv1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	s := resp.Msg
	if s.GetLeaderId() != leader.node.ID() || s.GetAnsweredBy() != leader.node.ID() || s.GetLeaderRegion() != "test" {
		t.Errorf("status: got leader %q (region %q) answered by %q, want %q in region test answered by the leader", s.GetLeaderId(), s.GetLeaderRegion(), s.GetAnsweredBy(), leader.node.ID())
	}
	if len(s.GetMembers()) != 3 {
		t.Fatalf("members: got %d, want 3", len(s.GetMembers()))
	}
	for _, m := range s.GetMembers() {
		want := nodes[0]
		for _, n := range nodes {
			if n.node.ID() == m.GetNodeId() {
				want = n
			}
		}
		if m.GetSuffrage() != clusterv1.Suffrage_SUFFRAGE_VOTER || m.GetHealth() != clusterv1.GossipHealth_GOSSIP_HEALTH_ALIVE ||
			m.GetApiAddr() != want.srv.Listener.Addr().String() || m.GetRaftAddr() != want.node.RaftAddr() {
			t.Errorf("member %s: got %v", m.GetNodeId(), m)
		}
	}
	if s.GetCommitIndex() == 0 || s.GetTerm() == 0 {
		t.Errorf("status indexes: got commit %d term %d, want non-zero", s.GetCommitIndex(), s.GetTerm())
	}
}

func TestJoinRemoveSemantics(t *testing.T) {
	nodes := startNodes(t, 3)
	_, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 20*time.Second)
	c := followers[0].client // everything goes through a follower: forwarded

	// A fourth node joins as non-voter.
	cfg := clustertest.NodeConfig(t, 3)
	fsm := &counterFSM{}
	n4, err := cluster.Open(cfg, fsm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n4.Shutdown() })
	join := &clusterv1.JoinRequest{NodeId: n4.ID(), RaftAddr: n4.RaftAddr(), ApiAddr: "127.0.0.1:9", Region: "test"}
	resp, err := c.Join(ctx, connect.NewRequest(join))
	if err != nil || resp.Msg.GetAlreadyMember() {
		t.Fatalf("join node-3: got %v, %v; want success, not already a member", resp, err)
	}
	resp, err = c.Join(ctx, connect.NewRequest(join))
	if err != nil || !resp.Msg.GetAlreadyMember() {
		t.Fatalf("repeat join: got %v, %v; want already_member", resp, err)
	}
	servers, _ := nodes[0].node.Servers()
	if len(servers) != 4 {
		t.Errorf("servers after join: got %d, want 4", len(servers))
	}

	// Duplicate id of a live node at another address.
	_, err = c.Join(ctx, connect.NewRequest(&clusterv1.JoinRequest{NodeId: nodes[1].node.ID(), RaftAddr: "127.0.0.1:1", Voter: true}))
	if codeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("join duplicate live id: got %v, want AlreadyExists", err)
	}
	for _, bad := range []*clusterv1.JoinRequest{
		{NodeId: "x", RaftAddr: "not-an-address"},
		{NodeId: "x", RaftAddr: "127.0.0.1:99999"},
		{NodeId: "bad id", RaftAddr: "127.0.0.1:1"},
		{NodeId: "x", RaftAddr: "127.0.0.1:1", ApiAddr: "http://127.0.0.1:1"},
	} {
		if _, err := c.Join(ctx, connect.NewRequest(bad)); codeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("join %v: got %v, want InvalidArgument", bad, err)
		}
	}

	if _, err := c.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: "nobody"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("remove unknown: got %v, want NotFound", err)
	}
	if _, err := c.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: n4.ID()})); err != nil {
		t.Fatalf("remove node-3: %v", err)
	}
	servers, _ = nodes[0].node.Servers()
	if len(servers) != 3 {
		t.Errorf("servers after remove: got %d, want 3", len(servers))
	}
}

func TestRemoveRefusesToBreakQuorum(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 20*time.Second)
	down, other := followers[0], followers[1]
	_ = down.gossip.Leave(time.Second)
	_ = down.gossip.Shutdown()
	_ = down.node.Shutdown()
	clustertest.WaitFor(t, 5*time.Second, "leader sees the stopped node as gone", func() bool {
		h, _ := leader.gossip.Health(down.node.ID())
		return h == cluster.HealthLeft || h == cluster.HealthDead
	})
	_, err := leader.client.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: other.node.ID()}))
	if codeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("remove a live voter while another is down: got %v, want FailedPrecondition", err)
	}
	servers, _ := leader.node.Servers()
	if len(servers) != 3 {
		t.Errorf("servers after refused remove: got %d, want 3", len(servers))
	}
	// Removing the dead one is fine: leader+other remain, both alive.
	if _, err := other.client.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: down.node.ID()})); err != nil {
		t.Fatalf("remove the down node: %v", err)
	}
}

func TestTransferLeadershipAndRemoveLeader(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 40*time.Second)
	target := followers[1].node.ID()
	var resp *connect.Response[clusterv1.TransferLeadershipResponse]
	err := retryTransferTimeout(ctx, func() (err error) {
		resp, err = followers[0].client.TransferLeadership(ctx, connect.NewRequest(&clusterv1.TransferLeadershipRequest{TargetNodeId: &target}))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.GetNewLeaderId() != target {
		t.Errorf("new leader: got %q, want %q", resp.Msg.GetNewLeaderId(), target)
	}
	clustertest.WaitFor(t, 5*time.Second, "target leads", followers[1].node.IsLeader)

	unknown := "nobody"
	if _, err := leader.client.TransferLeadership(ctx, connect.NewRequest(&clusterv1.TransferLeadershipRequest{TargetNodeId: &unknown})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("transfer to unknown: got %v, want NotFound", err)
	}

	// Removing the current leader hands leadership over first. Let the
	// first transfer settle before: every node follows the target and has
	// applied what it committed (so a second transfer finds an up-to-date
	// follower at once), and gossip sees every voter alive (the quorum
	// check counts those; on a loaded machine the transfer can make a
	// probe late).
	clustertest.WaitFor(t, 10*time.Second, "every node follows "+target+" and has caught up", func() bool {
		for _, n := range nodes {
			if id, _ := n.node.Leader(); id != target || n.node.AppliedIndex() < followers[1].node.CommitIndex() {
				return false
			}
		}
		return true
	})
	waitGossip(t, nodes)
	if err := retryTransferTimeout(ctx, func() error {
		_, err := leader.client.Remove(ctx, connect.NewRequest(&clusterv1.RemoveRequest{NodeId: target}))
		return err
	}); err != nil {
		t.Fatalf("remove leader: %v", err)
	}
	servers, _ := leader.node.Servers()
	for _, s := range servers {
		if s.ID == target {
			t.Errorf("removed leader %s still in configuration %v", target, servers)
		}
	}
	if followers[1].node.IsLeader() {
		t.Errorf("removed node still leads")
	}
}

// retryTransferTimeout calls f again while it fails because a leadership
// transfer timed out (Raft gives the target one election timeout to win;
// the leader keeps leading and nothing changed), until ctx ends. On a
// loaded machine an election can take longer than the test's short
// timeouts; any other outcome is returned at once.
func retryTransferTimeout(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !strings.Contains(err.Error(), "leadership transfer timeout") || ctx.Err() != nil {
			return err
		}
	}
}

func TestWriteThroughFollowerIsForwarded(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 10*time.Second)
	a, err := followers[0].node.Propose(ctx, []byte("inc"))
	if err != nil {
		t.Fatalf("propose on follower: %v", err)
	}
	if string(a.Response) != "1" || a.Index == 0 {
		t.Errorf("forwarded apply: got %+v, want response 1 and an index", a)
	}
	if err := leader.node.WaitApplied(ctx, a.Index); err != nil {
		t.Fatal(err)
	}
	if got := leader.fsm.Count(); got != 1 {
		t.Errorf("leader count: got %d, want 1", got)
	}
}

func TestLinearizableReadOnFollowerWaitsForLeaderCommit(t *testing.T) {
	nodes := startNodes(t, 3)
	leader, followers := leaderOf(t, nodes)
	ctx := ctxT(t, 15*time.Second)
	lagging := followers[0]
	release := lagging.fsm.block()
	defer release()

	w, err := leader.node.Apply(ctx, []byte("inc"))
	if err != nil {
		t.Fatal(err)
	}
	// A stale read is served at once from the lagging state.
	idx, err := lagging.node.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyStale})
	if err != nil || idx >= w.Index {
		t.Fatalf("stale read on lagging follower: got index %d, %v; want < %d immediately", idx, err, w.Index)
	}

	type result struct {
		idx uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		idx, err := lagging.node.ReadBarrier(ctx, cluster.ReadOptions{Consistency: cluster.ConsistencyLinearizable})
		done <- result{idx, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("linearizable read returned (%d, %v) while the follower had not applied index %d", r.idx, r.err, w.Index)
	case <-time.After(300 * time.Millisecond): // negative check: it must still be waiting
	}
	release()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.idx < w.Index {
		t.Errorf("linearizable read index: got %d, want >= %d", r.idx, w.Index)
	}
	if got := lagging.fsm.Count(); got != 1 {
		t.Errorf("count visible to the read: got %d, want 1", got)
	}
}

func TestErrorMappingAndReadOptions(t *testing.T) {
	if got := codeOf(clusterrpc.ToConnectError(&cluster.StaleError{Lag: time.Second, Max: time.Millisecond})); got != connect.CodeFailedPrecondition {
		t.Errorf("StaleError: got %v, want FailedPrecondition", got)
	}
	if got := codeOf(clusterrpc.ToConnectError(&cluster.NotLeaderError{})); got != connect.CodeUnavailable {
		t.Errorf("NotLeaderError: got %v, want Unavailable", got)
	}
	in := cluster.ReadOptions{Consistency: cluster.ConsistencyStale, MaxStaleness: 250 * time.Millisecond, MinIndex: 42}
	out, err := cluster.ReadOptionsFromProto(cluster.ReadOptionsToProto(in))
	if err != nil || out != in {
		t.Errorf("read options round trip: got %+v, %v; want %+v", out, err, in)
	}
	if _, err := cluster.ReadOptionsFromProto(&clusterv1.ReadOptions{Consistency: 99}); !errors.Is(err, cluster.ErrInvalidArgument) {
		t.Errorf("unknown consistency: got %v, want ErrInvalidArgument", err)
	}
}
