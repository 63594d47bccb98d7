package chaos

import (
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// hb builds histories for the tests: times in milliseconds.
type hb struct{ ops []Op }

func (h *hb) add(op Op) *hb {
	op.ID = len(h.ops)
	if op.User == "" {
		op.User = "u1"
	}
	if op.Node == "" {
		op.Node = "n1"
	}
	if op.Outcome == OK && op.Index == 0 {
		op.Index = uint64(10 + op.ID)
	}
	h.ops = append(h.ops, op)
	return h
}

func (h *hb) login(client int, slot int, sid string, call, ret int) *hb {
	return h.add(Op{Client: client, Kind: KindLogin, Slot: slot, Session: sid, Call: time.Duration(call) * ms, Return: time.Duration(ret) * ms})
}

func (h *hb) revoke(client int, sid string, call, ret int) *hb {
	return h.add(Op{Client: client, Kind: KindRevoke, Session: sid, Call: time.Duration(call) * ms, Return: time.Duration(ret) * ms})
}

// check adds a read of sid answering state ("active", "not_found" or an
// end reason).
func (h *hb) check(client int, lvl Level, node, sid, state string, call, ret int) *hb {
	op := Op{Client: client, Kind: KindCheck, Level: lvl, Node: node, Session: sid, Call: time.Duration(call) * ms, Return: time.Duration(ret) * ms}
	if state == "active" {
		op.Active = true
	} else {
		op.Reason = state
	}
	return h.add(op)
}

func checkOf(t *testing.T, h *hb) *Result {
	t.Helper()
	return Check(h.ops, CheckConfig{DefaultBound: 200 * ms, Timeout: 10 * time.Second})
}

func wantClean(t *testing.T, r *Result) {
	t.Helper()
	if len(r.Illegal) != 0 || len(r.Unknown) != 0 || len(r.Anomalies) != 0 {
		t.Fatalf("got illegal %v, unknown %v, anomalies %+v; want none", r.Illegal, r.Unknown, r.Anomalies)
	}
}

func wantAnomaly(t *testing.T, r *Result, check string, detail string) Anomaly {
	t.Helper()
	for _, a := range r.Anomalies {
		if a.Check == check && strings.Contains(a.Detail, detail) {
			return a
		}
	}
	t.Fatalf("anomalies %+v; want a %s anomaly mentioning %q", r.Anomalies, check, detail)
	return Anomaly{}
}

func TestCheckLinearizableHistory(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		check(1, Linearizable, "n2", "s1", "active", 11, 15).
		login(0, 0, "s2", 20, 30).                            // forces s1 out
		check(1, Linearizable, "n3", "s1", "active", 21, 25). // concurrent with the login: fine
		check(1, Linearizable, "n3", "s1", ReasonForcedOut, 31, 35).
		revoke(0, "s2", 40, 50).
		check(1, Linearizable, "n1", "s2", ReasonAdminRevoked, 45, 55). // concurrent: fine
		add(Op{Client: 2, Kind: KindRevoke, Session: "s2", Reason: ReasonAlreadyEnded, Call: 60 * ms, Return: 70 * ms}).
		add(Op{Client: 2, Kind: KindRevokeUser, Ended: 0, Call: 80 * ms, Return: 90 * ms}).
		add(Op{Client: 1, Kind: KindCheckUser, Level: Linearizable, Revoked: true, Call: 91 * ms, Return: 95 * ms}).
		// STALE may lag without limit; DEFAULT within the bound.
		check(3, Stale, "n2", "s2", "active", 500, 501).
		check(3, Default, "n2", "s1", "active", 30+150, 30+151)
	wantClean(t, checkOf(t, h))
}

func TestCheckLinearizableReadMissingAWrite(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		revoke(0, "s1", 20, 30).
		check(1, Linearizable, "n2", "s1", "active", 40, 45)
	r := checkOf(t, h)
	if len(r.Illegal) != 1 || r.Illegal[0] != "u1" {
		t.Fatalf("porcupine illegal users %v; want [u1]", r.Illegal)
	}
	a := wantAnomaly(t, r, CheckLinearizable, "missed the end of the session")
	if a.Staleness != 10*ms || a.Node != "n2" || a.Session != "s1" {
		t.Fatalf("anomaly %+v; want staleness 10ms on n2, session s1", a)
	}
	if err := r.Visualize("u1", t.TempDir()+"/u1.html"); err != nil {
		t.Fatalf("Visualize: %v", err)
	}
}

func TestCheckLinearizableRefusesImpossibleWriteAnswers(t *testing.T) {
	// Revoke-user says it ended 2 sessions when one was live.
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		add(Op{Client: 1, Kind: KindRevokeUser, Ended: 2, Call: 20 * ms, Return: 30 * ms})
	if r := checkOf(t, h); len(r.Illegal) != 1 {
		t.Fatalf("revoke-user ending 2 of 1 live sessions: illegal %v; want [u1]", r.Illegal)
	}
	// A revoke that says "already ended" for a live session.
	h = (&hb{}).
		login(0, 0, "s1", 0, 10).
		add(Op{Client: 1, Kind: KindRevoke, Session: "s1", Reason: ReasonAlreadyEnded, Call: 20 * ms, Return: 30 * ms})
	if r := checkOf(t, h); len(r.Illegal) != 1 {
		t.Fatalf("revoke answering already_ended on a live session: illegal %v; want [u1]", r.Illegal)
	}
}

func TestCheckUnknownOutcomes(t *testing.T) {
	// A login whose answer was lost may have forced s1 out, and its session
	// counts in a later revoke-user; a revoke whose answer was lost may or
	// may not have ended s2.
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		add(Op{Client: 1, Kind: KindLogin, Slot: 0, Outcome: Unknown, Err: "deadline", Call: 20 * ms, Return: 5000 * ms}).
		check(2, Linearizable, "n1", "s1", ReasonForcedOut, 30, 40).
		login(0, 1, "s2", 50, 60).
		add(Op{Client: 1, Kind: KindRevoke, Session: "s2", Outcome: Unknown, Call: 70 * ms, Return: 5000 * ms}).
		check(2, Linearizable, "n1", "s2", "active", 80, 90).
		add(Op{Client: 0, Kind: KindRevokeUser, Ended: 2, Call: 100 * ms, Return: 110 * ms}).
		check(2, Linearizable, "n1", "s2", ReasonAdminRevoked, 120, 130)
	wantClean(t, checkOf(t, h))

	// But once s2 was read ended, it cannot be read active again.
	h.check(2, Linearizable, "n2", "s2", "active", 140, 150)
	if r := checkOf(t, h); len(r.Illegal) != 1 {
		t.Fatalf("ended then active at LINEARIZABLE: illegal %v; want [u1]", r.Illegal)
	}
}

func TestCheckDefaultBound(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		revoke(0, "s1", 20, 30).
		check(1, Default, "n2", "s1", "active", 30+150, 30+160). // within 200ms: allowed
		check(1, Default, "n3", "s1", "active", 30+4500, 30+4501).
		check(1, Default, "n3", "s9", "not_found", 40, 50) // unknown session: ignored
	r := checkOf(t, h)
	if len(r.Illegal) != 0 {
		t.Fatalf("DEFAULT reads are not in porcupine's history; illegal %v", r.Illegal)
	}
	a := wantAnomaly(t, r, CheckDefaultBound, "missed the end of the session acknowledged 4.5s")
	if a.Node != "n3" || r.Count(CheckDefaultBound) != 1 {
		t.Fatalf("anomalies %+v; want exactly one default-bound on n3", r.Anomalies)
	}
	if r.MaxDefaultStaleness != 4500*ms {
		t.Fatalf("MaxDefaultStaleness %s; want 4.5s", r.MaxDefaultStaleness)
	}
	// A DEFAULT read not finding a session whose login was acknowledged long
	// before is stale too.
	h = (&hb{}).login(0, 0, "s1", 0, 10).check(1, Default, "n2", "s1", "not_found", 1000, 1001)
	wantAnomaly(t, checkOf(t, h), CheckDefaultBound, "missed the login")
}

func TestCheckNeverExistedAndRegression(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		check(1, Stale, "n2", "s1", ReasonAdminRevoked, 20, 30). // nobody revoked it
		check(1, Stale, "n2", "s1", ReasonForcedOut, 40, 50).    // nobody logged in on slot 0 again
		add(Op{Client: 1, Kind: KindCheckUser, Level: Stale, Revoked: true, Call: 60 * ms, Return: 70 * ms})
	r := checkOf(t, h)
	if got := r.Count(CheckNeverExisted); got != 3 {
		t.Fatalf("never-existed anomalies %d (%+v); want 3", got, r.Anomalies)
	}
	// A node that answered "ended" and later "active" regressed; STALE
	// allows it, the report counts it.
	h = (&hb{}).
		login(0, 0, "s1", 0, 10).
		revoke(0, "s1", 20, 30).
		check(1, Stale, "n2", "s1", ReasonAdminRevoked, 40, 50).
		check(1, Stale, "n2", "s1", "active", 60, 70)
	r = checkOf(t, h)
	wantAnomaly(t, r, CheckRegression, "after")
	if r.Count(CheckNeverExisted) != 0 {
		t.Fatalf("anomalies %+v; want no never-existed", r.Anomalies)
	}
}

func TestCheckFinalReadsAndIndexes(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		login(0, 1, "s2", 20, 30).
		revoke(0, "s2", 40, 50).
		add(Op{Client: 0, Kind: KindRevokeUser, Ended: 1, Call: 60 * ms, Return: 70 * ms, User: "u2"}).
		add(Op{Client: 9, Kind: KindCheck, Level: Linearizable, Session: "s1", Reason: ReasonNotFound, Final: true, Call: 1000 * ms, Return: 1001 * ms}).
		add(Op{Client: 9, Kind: KindCheck, Level: Stale, Node: "n1", Session: "s2", Active: true, Final: true, Call: 1002 * ms, Return: 1003 * ms}).
		add(Op{Client: 9, Kind: KindCheck, Level: Stale, Node: "n2", Session: "s2", Reason: ReasonAdminRevoked, Final: true, Call: 1002 * ms, Return: 1003 * ms}).
		add(Op{Client: 9, Kind: KindCheckUser, Level: Stale, User: "u2", Revoked: false, Final: true, Call: 1004 * ms, Return: 1005 * ms}).
		add(Op{Client: 9, Kind: KindCheck, Level: Stale, Session: "s1", Active: true, Index: 3, Call: 1010 * ms, Return: 1011 * ms})
	h.check(3, Default, "n3", "s1", "active", 1020, 1021)
	h.ops[len(h.ops)-1].Index = 0 // as a node just restarted answered
	r := checkOf(t, h)
	wantAnomaly(t, r, CheckIndex, "answered index 0")
	wantAnomaly(t, r, CheckLost, "the acknowledged login is gone")
	wantAnomaly(t, r, CheckLost, "the acknowledged end of the session is gone")
	wantAnomaly(t, r, CheckLost, "the acknowledged cut-off is gone")
	wantAnomaly(t, r, CheckDiverged, "disagrees")
	wantAnomaly(t, r, CheckIndex, "opened at index 10 but says it reflects index 3")
	if r.Verified != 4 {
		t.Fatalf("Verified %d; want 4 final reads", r.Verified)
	}
}

func TestUnavailability(t *testing.T) {
	var ops []Op
	for _, at := range []int{100, 200, 300, 2300, 2400, 2500, 5000, 5100} {
		ops = append(ops, Op{Kind: KindLogin, Outcome: OK, Call: time.Duration(at-5) * ms, Return: time.Duration(at) * ms})
	}
	// Failed writes and STALE reads do not count as availability.
	ops = append(ops, Op{Kind: KindLogin, Outcome: Unknown, Return: 1000 * ms}, Op{Kind: KindCheck, Level: Stale, Outcome: OK, Return: 1000 * ms})
	faults := []Fault{
		{Type: "kill", Target: "n1", Start: 250 * ms, End: 1500 * ms},
		{Type: "pause", Target: "n2", Start: 3000 * ms, End: 3500 * ms},
	}
	got := Unavailability(ops, faults, 0, 5200*ms, 500*ms)
	if o := got["kill"]; o.Longest != 2000*ms || o.Count != 1 || !strings.Contains(o.Fault, "n1") {
		t.Errorf("kill: %+v; want the 2s gap from 300ms, count 1, naming n1", o)
	}
	if o := got["pause"]; o.Longest != 2500*ms {
		t.Errorf("pause: %+v; want the 2.5s gap from 2.5s", o)
	}
	if o := got[NoFault]; o.Longest != 100*ms {
		t.Errorf("none: %+v; want 100ms", o)
	}
}

// A fault's grace period ends where the next fault begins: an outage that
// starts under the next fault is not the previous one's.
func TestUnavailabilityGraceEndsAtNextFault(t *testing.T) {
	var ops []Op
	for _, at := range []int{50, 160, 2300} {
		ops = append(ops, Op{Kind: KindRevoke, Outcome: OK, Return: time.Duration(at) * ms})
	}
	faults := []Fault{
		{Type: "join", Target: "n4", Start: 0, End: 100 * ms},
		{Type: "partition", Target: "n1", Start: 150 * ms, End: 2000 * ms},
	}
	got := Unavailability(ops, faults, 0, 2300*ms, 5*time.Second)
	if o := got["partition"]; o.Longest != 2140*ms {
		t.Errorf("partition: %+v; want the 2.14s gap", o)
	}
	if o := got["join"]; o.Longest != 110*ms {
		t.Errorf("join: %+v; want only the 110ms gap that began under it", o)
	}
}

// A write of unknown outcome stays pending until Settled, not after: a
// revoke that shows up only after the cluster settled is an anomaly.
func TestCheckSettledBoundsUnknownWrites(t *testing.T) {
	h := (&hb{}).
		login(0, 0, "s1", 0, 10).
		add(Op{Client: 1, Kind: KindRevoke, Session: "s1", Outcome: Unknown, Call: 20 * ms, Return: 8000 * ms}).
		check(2, Linearizable, "n1", "s1", "active", 10000, 10001).
		check(2, Linearizable, "n1", "s1", ReasonAdminRevoked, 11000, 11001)
	if r := checkOf(t, h); len(r.Illegal) != 0 {
		t.Fatalf("without Settled: illegal %v; want none (the revoke may land late)", r.Illegal)
	}
	r := Check(h.ops, CheckConfig{DefaultBound: 200 * ms, Timeout: 10 * time.Second, Settled: 9000 * ms})
	if len(r.Illegal) != 1 {
		t.Fatalf("with Settled before the reads: illegal %v; want [u1]", r.Illegal)
	}
}
