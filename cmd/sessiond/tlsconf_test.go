package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc/notify"
	"github.com/sessiond/sessiond/cluster/clustertest"
	"github.com/sessiond/sessiond/cluster/pki"
)

// TestCertificateExpiryIsWarnedAndAlerted: a node certificate expiring in
// 10 days is logged at WARN and sent to the notifiers (a webhook here),
// and the expiry metric says when.
func TestCertificateExpiryIsWarnedAndAlerted(t *testing.T) {
	p := clustertest.NewPKI(t)
	f := p.Issue(t, pki.Identity{TrustDomain: p.TrustDomain, Kind: pki.KindNode, Name: "hk-1"}, 10*24*time.Hour, time.Time{})
	store, err := pki.NewStore(f, pki.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nt := &nodeTLS{peer: store, domain: p.TrustDomain}

	var mu sync.Mutex
	var events []notify.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		raw, _ := io.ReadAll(r.Body)
		if json.Unmarshal(raw, &ev) == nil {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	alerts := notify.NewDispatcher(notify.DispatcherConfig{}, &notify.Webhook{URL: hook.URL})
	defer func() { _ = alerts.Close(context.Background()) }()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	raise := func(_ string, ev notify.Event) { alerts.Dispatch(ev) }
	go func() { nt.warnExpiry(ctx, log, raise, "hk-1", "hk"); close(done) }()
	clustertest.WaitFor(t, 10*time.Second, "the expiry alert at the webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0
	})
	cancel()
	<-done
	mu.Lock()
	ev := events[0]
	mu.Unlock()
	if ev.Kind != notify.KindCertExpiring || ev.Node != "hk-1" || !strings.Contains(ev.Detail, "the peer certificate expires at") {
		t.Errorf("alert: %+v; want kind %s for hk-1 naming the peer certificate's expiry", ev, notify.KindCertExpiring)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "TLS certificate expiring") || !strings.Contains(out, "use=peer") {
		t.Errorf("log: %q; want a WARN naming the peer certificate", out)
	}
	if got, want := nt.expiries()["peer"], store.Current().NotAfter(); !got.Equal(want) {
		t.Errorf("expiry of the peer certificate: %v; want %v", got, want)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
