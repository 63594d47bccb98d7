package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRingBounds: the ring keeps the newest events within its count and
// byte budgets, and a value is cut to its bound.
func TestRingBounds(t *testing.T) {
	r := New("hk-1", "hk", 100, 1<<20)
	for i := range 250 {
		r.Add(Event{Time: time.Unix(int64(i), 0), Type: "login", User: fmt.Sprint("u", i)})
	}
	held, dropped := r.Len()
	if held != 100 || dropped != 150 {
		t.Errorf("held %d, dropped %d; want 100, 150", held, dropped)
	}
	if got := r.Query(Query{Limit: 1}); len(got) != 1 || got[0].User != "u249" || got[0].Node != "hk-1" {
		t.Errorf("newest: %+v; want u249 on hk-1", got)
	}
	for i, e := range r.Query(Query{}) { // across the buffer's wrap, newest first
		if want := fmt.Sprint("u", 249-i); e.User != want {
			t.Fatalf("event %d is %s, want %s", i, e.User, want)
		}
	}
	small := New("n", "r", 1000, 4096)
	for range 100 {
		small.Add(Event{Type: "x", Attrs: map[string]string{"k": strings.Repeat("v", 200)}})
	}
	if held, _ := small.Len(); held == 0 || held > 4096/200 {
		t.Errorf("byte-bounded ring holds %d events of ~300 bytes in 4096; want 1..20", held)
	}
}

// TestHandlerAndQuery: audit lines logged through the handler are kept
// with their type, principal and user, other lines are not, and the
// filters select by user, type and time.
func TestHandlerAndQuery(t *testing.T) {
	r := New("hk-1", "hk", 100, 1<<20)
	var sink strings.Builder
	log := slog.New(r.Handler(slog.NewJSONHandler(&sink, nil))).With("component", "audit")
	log.Info("audit", "event", "login", "user", "u-1", "ip", "10.0.0.1")
	log.Info("audit", "event", "operator_action", "principal", "user/ops@example.com", "procedure", "/x/SetUserStatus")
	log.Info("something else", "event", "not audit")
	log.LogAttrs(context.Background(), slog.LevelInfo, "audit", slog.String("event", "login"), slog.String("user", "u-2"),
		slog.String("long", strings.Repeat("x", 1000)))
	if !strings.Contains(sink.String(), "something else") {
		t.Errorf("the next handler did not get every line: %s", sink.String())
	}
	all := r.Query(Query{})
	if len(all) != 3 {
		t.Fatalf("kept %d events, want the 3 audit lines: %+v", len(all), all)
	}
	if got := all[0].Attrs["long"]; len(got) != maxValueLen {
		t.Errorf("long value kept as %d bytes, want cut to %d", len(got), maxValueLen)
	}
	if got := r.Query(Query{User: "OPS@example"}); len(got) != 1 || got[0].Type != "operator_action" {
		t.Errorf("by principal: %+v; want the operator action", got)
	}
	if got := r.Query(Query{Type: "login"}); len(got) != 2 || got[0].User != "u-2" || got[1].User != "u-1" {
		t.Errorf("by type, newest first: %+v; want u-2 then u-1", got)
	}
	if got := r.Query(Query{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("since an hour ahead: %d events, want 0", len(got))
	}
	merged := Merge(2, []Event{{Time: time.Unix(3, 0)}, {Time: time.Unix(1, 0)}}, []Event{{Time: time.Unix(2, 0)}})
	if len(merged) != 2 || merged[0].Time.Unix() != 3 || merged[1].Time.Unix() != 2 {
		t.Errorf("merge: %+v; want times 3, 2", merged)
	}
}
