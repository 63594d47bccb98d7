package authsvc

import (
	"regexp"
	"testing"
	"time"
)

// Session and request ids sort by creation time (bbolt then appends them),
// differ at the same instant, and are valid store ids.
func TestSortableIDsSortByTime(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9._~:+/=@-]{1,255}$`)
	t0 := time.Unix(1_700_000_000, 0)
	prev := ""
	for i := range 1000 {
		id := sortableID(t0.Add(time.Duration(i) * time.Microsecond))
		if !valid.MatchString(id) || len(id) != 29 {
			t.Fatalf("sortableID = %q: want 29 characters a store id may hold", id)
		}
		if id <= prev {
			t.Fatalf("sortableID at +%dµs = %q, not after the one before (%q)", i, id, prev)
		}
		prev = id
	}
	if a, b := sortableID(t0), sortableID(t0); a == b {
		t.Fatalf("two ids at the same instant are equal: %q", a)
	}
}
