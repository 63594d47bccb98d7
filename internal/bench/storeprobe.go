package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// StoreSummary is what the targets' state machines wrote during a run,
// all targets together, from their /metrics counters (sessiond_store_*).
// It is the write amplification a user's load causes, measured on the
// real processes.
type StoreSummary struct {
	// Nodes is how many targets answered at both ends of the run.
	Nodes int `json:"nodes"`
	// Transactions, Entries and PageWrites are the counters' increase.
	Transactions uint64 `json:"transactions"`
	Entries      uint64 `json:"entries"`
	PageWrites   uint64 `json:"page_writes"`
	// PagesPerOp is PageWrites per successful operation of the run (every
	// node's pages: a write is applied on each); PagesPerEntry per log
	// entry applied; EntriesPerTransaction is the mean group commit.
	PagesPerOp            float64 `json:"pages_per_op,omitempty"`
	PagesPerEntry         float64 `json:"pages_per_entry,omitempty"`
	EntriesPerTransaction float64 `json:"entries_per_transaction,omitempty"`
}

// storeCounters are one node's sessiond_store_* counters.
type storeCounters struct{ transactions, entries, pages uint64 }

// StoreProbe reads the targets' store counters at the start and the end
// of a run (the operator token needs the metrics scope).
type StoreProbe struct {
	Conn Conn
	at   []*storeCounters // per target; nil: no answer
}

// Start reads the counters as the run starts.
func (p *StoreProbe) Start(ctx context.Context) {
	p.at = p.read(ctx)
}

// Finish reads the counters again and returns their increase over the
// run, with ops the run's successful operations; a note says why there
// is none (no target answered, the token lacks the metrics scope).
func (p *StoreProbe) Finish(ctx context.Context, ops int64) (*StoreSummary, string) {
	end := p.read(ctx)
	var s StoreSummary
	for i, a := range p.at {
		b := end[i]
		if a == nil || b == nil || b.pages < a.pages {
			continue // no answer, or the node restarted
		}
		s.Nodes++
		s.Transactions += b.transactions - a.transactions
		s.Entries += b.entries - a.entries
		s.PageWrites += b.pages - a.pages
	}
	if s.Nodes == 0 {
		return nil, "store write counters not read: no target served sessiond_store_* on /metrics (the operator token needs the metrics scope)"
	}
	if ops > 0 {
		s.PagesPerOp = float64(s.PageWrites) / float64(ops)
	}
	if s.Entries > 0 {
		s.PagesPerEntry = float64(s.PageWrites) / float64(s.Entries)
	}
	if s.Transactions > 0 {
		s.EntriesPerTransaction = float64(s.Entries) / float64(s.Transactions)
	}
	return &s, ""
}

func (p *StoreProbe) read(ctx context.Context) []*storeCounters {
	out := make([]*storeCounters, len(p.Conn.Targets))
	hc, err := p.Conn.HTTPClient(0)
	if err != nil {
		return out
	}
	defer hc.CloseIdleConnections()
	for i, t := range p.Conn.Targets {
		if c, err := p.fetch(ctx, hc, strings.TrimRight(t, "/")+"/metrics"); err == nil {
			out[i] = c
		}
	}
	return out
}

func (p *StoreProbe) fetch(ctx context.Context, hc *http.Client, u string) (*storeCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if tok := p.Conn.OperatorToken; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	value := func(name string) (uint64, bool) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter() == nil {
			return 0, false
		}
		return uint64(f.GetMetric()[0].GetCounter().GetValue()), true
	}
	var c storeCounters
	var ok1, ok2, ok3 bool
	c.transactions, ok1 = value("sessiond_store_transactions_total")
	c.entries, ok2 = value("sessiond_store_entries_applied_total")
	c.pages, ok3 = value("sessiond_store_page_writes_total")
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New(u + ": no sessiond_store_* counters")
	}
	return &c, nil
}
