package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"

	clusterv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1"
)

// Reporter answers PeerService.Report for the host program: a question of
// some kind about this node's own recent activity, its parameters and its
// answer encoded by the host. It must bound its own work and answer size.
type Reporter func(ctx context.Context, kind string, query []byte) ([]byte, error)

// Bounds of a report question.
const (
	maxReportKind  = 32
	maxReportQuery = 64 << 10
	// reportTimeout bounds each node's answer in AskAll.
	reportTimeout = 3 * time.Second
)

// ErrNoReporter is the answer of a node whose host registered no reporter
// (or none for the kind asked).
var ErrNoReporter = errors.New("cluster: this node answers no report of that kind")

// SetReporter registers the function that answers other nodes' Report
// questions (and this node's own, in AskAll); nil unregisters.
func (n *Node) SetReporter(f Reporter) {
	if f == nil {
		n.reporter.Store(nil)
		return
	}
	n.reporter.Store(&f)
}

func (n *Node) report(ctx context.Context, kind string, query []byte) ([]byte, error) {
	if len(kind) == 0 || len(kind) > maxReportKind || len(query) > maxReportQuery {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("report: kind must be 1-%d bytes, query at most %d bytes", maxReportKind, maxReportQuery))
	}
	f := n.reporter.Load()
	if f == nil {
		return nil, ErrNoReporter
	}
	return (*f)(ctx, kind, query)
}

// Report answers another node's question (PeerService.Report).
func (s *peerService) Report(ctx context.Context, req *connect.Request[clusterv1.ReportRequest]) (*connect.Response[clusterv1.ReportResponse], error) {
	out, err := s.n.report(ctx, req.Msg.GetKind(), req.Msg.GetQuery())
	if err != nil {
		if errors.Is(err, ErrNoReporter) {
			return nil, connect.NewError(connect.CodeUnimplemented, err)
		}
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, ToConnectError(err)
	}
	return connect.NewResponse(&clusterv1.ReportResponse{NodeId: s.n.cfg.NodeID, Answer: out}), nil
}

// AskAll asks every member of the Raft configuration, this node included,
// the same question in parallel, each within a few seconds, and returns
// the answers by node id and, sorted, the ids of the nodes that did not
// answer.
func (n *Node) AskAll(ctx context.Context, kind string, query []byte) (map[string][]byte, []string) {
	servers, err := n.Servers()
	if err != nil || len(servers) == 0 {
		servers = []Server{{ID: n.cfg.NodeID}}
	}
	var mu sync.Mutex
	answers := make(map[string][]byte, len(servers))
	var missing []string
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, reportTimeout)
			defer cancel()
			var out []byte
			var err error
			if s.ID == n.cfg.NodeID {
				out, err = n.report(ctx, kind, query)
			} else {
				var resp *connect.Response[clusterv1.ReportResponse]
				resp, err = n.peer(s.RaftAddr, s.ID).Report(ctx, connect.NewRequest(&clusterv1.ReportRequest{Kind: kind, Query: query}))
				if err == nil {
					out = resp.Msg.GetAnswer()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.logger.Debug("report unanswered", "node", s.ID, "kind", kind, "err", err)
				missing = append(missing, s.ID)
				return
			}
			answers[s.ID] = out
		}()
	}
	wg.Wait()
	sort.Strings(missing)
	return answers, missing
}
