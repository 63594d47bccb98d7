package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Anomaly checks.
const (
	// CheckLinearizable: the writes and LINEARIZABLE reads of a user have
	// no linearization (porcupine), or a LINEARIZABLE read missed a write
	// acknowledged before it began.
	CheckLinearizable = "linearizable"
	// CheckDefaultBound: a DEFAULT read missed a write acknowledged more
	// than the bound before it began.
	CheckDefaultBound = "default-bound"
	// CheckNeverExisted: a read (any level) showed a state no operation
	// invoked before its answer could have produced.
	CheckNeverExisted = "never-existed"
	// CheckLost: a final read, after every node was killed and restarted,
	// lacks an acknowledged write.
	CheckLost = "lost-write"
	// CheckDiverged: after catching up, nodes answered differently.
	CheckDiverged = "diverged"
	// CheckIndex: an answer's index cannot be the applied index it
	// reflects (0, or older than the write it shows).
	CheckIndex = "index"
	// CheckRegression: a node answered an older state than it had answered
	// before (allowed for STALE reads, reported).
	CheckRegression = "regression"
)

// Anomaly is one violation found in a history.
type Anomaly struct {
	// Check names the property violated.
	Check string `json:"check"`
	// User, Session and Node say where.
	User    string `json:"user,omitempty"`
	Session string `json:"session,omitempty"`
	Node    string `json:"node,omitempty"`
	// Op is the offending operation (a read, usually); At its call time.
	Op int           `json:"op"`
	At time.Duration `json:"at"`
	// Staleness is, for missed writes, how long before the read began the
	// missed write had been acknowledged.
	Staleness time.Duration `json:"staleness,omitempty"`
	// Detail explains it, naming the operations involved.
	Detail string `json:"detail"`
}

// CheckConfig sets the bounds the checks apply.
type CheckConfig struct {
	// DefaultBound is how stale a DEFAULT read may be: the documented
	// FollowerMaxLag plus a tolerance for the clocks and the scheduler.
	DefaultBound time.Duration
	// Timeout bounds porcupine's search per user (0: 30 s), and Budget
	// all of them together (0: no bound); a user whose search ran out of
	// time is Unknown.
	Timeout, Budget time.Duration
	// Settled, when set, is a time by which every write of unknown outcome
	// had taken effect or never would: the answer of the first final
	// LINEARIZABLE read after every node was killed and restarted. (Their
	// processes and connections are gone, and a read-index waits for the
	// new leader's first commit, which commits or discards every entry
	// left in the logs.) Without it such writes stay pending to the end.
	Settled time.Duration
}

// Result is what Check found.
type Result struct {
	// Users is how many users' histories were checked; Illegal and Unknown
	// list those porcupine found not linearizable or could not decide in
	// time.
	Users   int      `json:"users"`
	Illegal []string `json:"illegal,omitempty"`
	Unknown []string `json:"unknown,omitempty"`
	// Anomalies lists every anomaly of every check.
	Anomalies []Anomaly `json:"anomalies,omitempty"`
	// MaxDefaultStaleness is the worst staleness of a DEFAULT read beyond
	// zero (a read that missed a write acknowledged before it began),
	// whether or not beyond the bound.
	MaxDefaultStaleness time.Duration `json:"max_default_staleness"`
	// Verified counts the final reads (every node, every acknowledged
	// session) that were checked for lost writes.
	Verified int `json:"verified"`

	// info holds porcupine's linearization info of the illegal users, for
	// Visualize.
	info map[string]porcupine.LinearizationInfo
}

// Count returns the number of anomalies of check c.
func (r *Result) Count(c string) int {
	n := 0
	for _, a := range r.Anomalies {
		if a.Check == c {
			n++
		}
	}
	return n
}

// Visualize writes porcupine's HTML visualization of user's history (one
// of Illegal) to path.
func (r *Result) Visualize(user, path string) error {
	info, ok := r.info[user]
	if !ok {
		return fmt.Errorf("no linearization info for user %s", user)
	}
	return porcupine.VisualizePath(Model(), info, path)
}

// never is later than any time of a history.
const never = time.Duration(math.MaxInt64)

// sessionFacts are what the history says of one session.
type sessionFacts struct {
	login *Op
	// definiteEnd is the earliest acknowledgement of an operation that
	// certainly ended the session (never if none).
	definiteEnd   time.Duration
	definiteEndBy *Op
	// mayEndRevoke and mayEndLogin are the earliest calls of an operation
	// that could have ended it with admin_revoked or forced_out.
	mayEndRevoke, mayEndLogin time.Duration
}

// Check runs every check on a history.
func Check(ops []Op, cfg CheckConfig) *Result {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	byUser := map[string][]*Op{}
	for i := range ops {
		op := &ops[i]
		byUser[op.User] = append(byUser[op.User], op)
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	sort.Strings(users)
	res := &Result{Users: len(users), info: map[string]porcupine.LinearizationInfo{}}
	end := time.Duration(0)
	for _, op := range ops {
		end = max(end, op.Return, op.Call)
	}
	deadline := time.Now().Add(cfg.Budget)
	for _, u := range users {
		uops := byUser[u]
		pending := end + 1
		if cfg.Settled > 0 {
			pending = cfg.Settled
		}
		timeout := cfg.Timeout
		if cfg.Budget > 0 {
			timeout = max(min(timeout, time.Until(deadline)), 100*time.Millisecond)
		}
		res.linearizable(u, uops, pending, timeout)
		res.reads(u, uops, cfg)
	}
	res.regressions(ops)
	res.final(ops)
	sort.SliceStable(res.Anomalies, func(i, j int) bool { return res.Anomalies[i].At < res.Anomalies[j].At })
	return res
}

// linearizable checks one user's writes and LINEARIZABLE reads with
// porcupine. Operations with an Unknown outcome stay pending until end.
func (r *Result) linearizable(user string, ops []*Op, end time.Duration, timeout time.Duration) {
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.Outcome == Failed || (!op.Kind.IsWrite() && (op.Outcome != OK || op.Level != Linearizable)) {
			continue
		}
		ret := op.Return
		if op.Outcome == Unknown {
			ret = max(end, op.Call)
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: int64(op.Call), Return: int64(ret)})
	}
	if len(hist) == 0 {
		return
	}
	switch result, info := porcupine.CheckOperationsVerbose(Model(), hist, timeout); result {
	case porcupine.Illegal:
		r.Illegal = append(r.Illegal, user)
		r.info[user] = info
	case porcupine.Unknown:
		r.Unknown = append(r.Unknown, user)
	}
}

// facts gathers, for each session of a user that a login acknowledged,
// what could and what certainly ended it.
func facts(ops []*Op) map[string]*sessionFacts {
	fs := map[string]*sessionFacts{}
	for _, op := range ops {
		if op.Kind == KindLogin && op.Outcome == OK && op.Session != "" {
			fs[op.Session] = &sessionFacts{login: op, definiteEnd: never, mayEndRevoke: never, mayEndLogin: never}
		}
	}
	ret := func(op *Op) time.Duration {
		if op.Outcome == Unknown {
			return never
		}
		return op.Return
	}
	certain := func(f *sessionFacts, op *Op) {
		if op.Outcome == OK && op.Return < f.definiteEnd {
			f.definiteEnd, f.definiteEndBy = op.Return, op
		}
	}
	for _, op := range ops {
		if op.Outcome == Failed {
			continue
		}
		switch op.Kind {
		case KindRevoke:
			f := fs[op.Session]
			if f == nil {
				continue
			}
			f.mayEndRevoke = min(f.mayEndRevoke, op.Call)
			if op.Reason == "" || op.Reason == ReasonAlreadyEnded {
				certain(f, op)
			}
		case KindRevokeUser, KindLogin:
			for sid, f := range fs {
				if sid == op.Session || (op.Kind == KindLogin && op.Slot != f.login.Slot) {
					continue
				}
				if ret(op) < f.login.Call {
					continue // over before the session was asked for
				}
				if op.Kind == KindLogin {
					f.mayEndLogin = min(f.mayEndLogin, op.Call)
				} else {
					f.mayEndRevoke = min(f.mayEndRevoke, op.Call)
				}
				if op.Call > f.login.Return {
					certain(f, op)
				}
			}
		}
	}
	return fs
}

// reads checks each read of one user against the writes: the staleness
// bound of its level, states that never existed, and its index.
func (r *Result) reads(user string, ops []*Op, cfg CheckConfig) {
	fs := facts(ops)
	var revokeUsers []*Op
	for _, op := range ops {
		if op.Kind == KindRevokeUser && op.Outcome != Failed {
			revokeUsers = append(revokeUsers, op)
		}
	}
	for _, op := range ops {
		if op.Outcome != OK || op.Kind.IsWrite() {
			if op.Kind.IsWrite() && op.Outcome == OK && op.Reason == "" && op.Index == 0 {
				r.add(Anomaly{Check: CheckIndex, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
					Detail: "write acknowledged with index 0: " + describe(op)})
			}
			continue
		}
		bound, check := never, ""
		switch op.Level {
		case Linearizable:
			bound, check = 0, CheckLinearizable
		case Default:
			bound, check = cfg.DefaultBound, CheckDefaultBound
		}
		if op.Final {
			bound, check = never, "" // judged by final()
		}
		if op.Index == 0 {
			r.add(Anomaly{Check: CheckIndex, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
				Detail: describe(op) + ": answered index 0 (no log index is applied before the cluster's first entry)"})
		}
		switch op.Kind {
		case KindCheck:
			f := fs[op.Session]
			if f == nil {
				continue
			}
			r.checkRead(user, op, f, bound, check)
		case KindCheckUser:
			r.checkUserRead(user, op, revokeUsers, bound, check)
		}
	}
}

func (r *Result) checkRead(user string, op *Op, f *sessionFacts, bound time.Duration, check string) {
	missed := func(ackAt time.Duration, by *Op, what string) {
		stale := op.Call - ackAt
		if op.Level == Default && stale > r.MaxDefaultStaleness {
			r.MaxDefaultStaleness = stale
		}
		if bound != never && stale > bound {
			r.add(Anomaly{Check: check, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call, Staleness: stale,
				Detail: fmt.Sprintf("%s missed %s acknowledged %s before it began: %s", describe(op), what, stale.Round(time.Millisecond), describe(by))})
		}
	}
	switch {
	case op.Active:
		if f.definiteEnd < op.Call {
			missed(f.definiteEnd, f.definiteEndBy, "the end of the session")
		}
	case op.Reason == ReasonNotFound:
		if f.login.Return < op.Call {
			missed(f.login.Return, f.login, "the login")
		}
	default:
		may := never
		switch op.Reason {
		case ReasonAdminRevoked:
			may = f.mayEndRevoke
		case ReasonForcedOut:
			may = f.mayEndLogin
		}
		if may > op.Return {
			r.add(Anomaly{Check: CheckNeverExisted, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
				Detail: fmt.Sprintf("%s: no operation that could end the session with reason %q was invoked before the answer", describe(op), op.Reason)})
		}
	}
	if (op.Active || op.Reason != ReasonNotFound) && op.Index != 0 && op.Index < f.login.Index {
		r.add(Anomaly{Check: CheckIndex, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
			Detail: fmt.Sprintf("%s shows a session opened at index %d but says it reflects index %d", describe(op), f.login.Index, op.Index)})
	}
}

func (r *Result) checkUserRead(user string, op *Op, revokes []*Op, bound time.Duration, check string) {
	if op.Revoked {
		for _, w := range revokes {
			if w.Call <= op.Return {
				return
			}
		}
		r.add(Anomaly{Check: CheckNeverExisted, User: user, Node: op.Node, Op: op.ID, At: op.Call,
			Detail: describe(op) + ": no revoke-user was invoked before the answer"})
		return
	}
	var first *Op
	for _, w := range revokes {
		if w.Outcome == OK && w.Return < op.Call && (first == nil || w.Return < first.Return) {
			first = w
		}
	}
	if first == nil {
		return
	}
	stale := op.Call - first.Return
	if op.Level == Default && stale > r.MaxDefaultStaleness {
		r.MaxDefaultStaleness = stale
	}
	if bound != never && stale > bound {
		r.add(Anomaly{Check: check, User: user, Node: op.Node, Op: op.ID, At: op.Call, Staleness: stale,
			Detail: fmt.Sprintf("%s missed the cut-off acknowledged %s before it began: %s", describe(op), stale.Round(time.Millisecond), describe(first))})
	}
}

// rank orders the states a check can show: a session is first not found,
// then active, then ended.
func rank(op *Op) int {
	switch {
	case op.Active:
		return 1
	case op.Reason == ReasonNotFound:
		return 0
	}
	return 2
}

// regressions finds reads where a node answered an older state of a
// session than it had answered in a read that returned before this one
// began.
func (r *Result) regressions(ops []Op) {
	type key struct{ node, session string }
	seen := map[key][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.Kind == KindCheck && op.Outcome == OK && !op.Final {
			k := key{op.Node, op.Session}
			seen[k] = append(seen[k], op)
		}
	}
	for k, reads := range seen {
		slices.SortFunc(reads, func(a, b *Op) int { return cmp.Compare(a.Call, b.Call) })
		for j, later := range reads {
			for _, earlier := range reads[:j] {
				if earlier.Return < later.Call && rank(later) < rank(earlier) {
					r.add(Anomaly{Check: CheckRegression, User: later.User, Session: k.session, Node: k.node, Op: later.ID, At: later.Call,
						Detail: fmt.Sprintf("%s after %s", describe(later), describe(earlier))})
					break
				}
			}
		}
	}
}

// final checks the final reads: every acknowledged write is there on every
// node, and the nodes agree once caught up (STALE final reads).
func (r *Result) final(ops []Op) {
	byUser := map[string][]*Op{}
	for i := range ops {
		byUser[ops[i].User] = append(byUser[ops[i].User], &ops[i])
	}
	for user, uops := range byUser {
		fs := facts(uops)
		var acked *Op // the first acknowledged revoke-user
		for _, op := range uops {
			if op.Kind == KindRevokeUser && op.Outcome == OK && (acked == nil || op.Return < acked.Return) {
				acked = op
			}
		}
		// A final read must show every write acknowledged before it began.
		agree := map[string]*Op{} // session -> first final STALE read
		for _, op := range uops {
			if !op.Final || op.Outcome != OK {
				continue
			}
			r.Verified++
			switch op.Kind {
			case KindCheckUser:
				if !op.Revoked && acked != nil && acked.Return < op.Call {
					r.add(Anomaly{Check: CheckLost, User: user, Node: op.Node, Op: op.ID, At: op.Call,
						Detail: fmt.Sprintf("%s: the acknowledged cut-off is gone: %s", describe(op), describe(acked))})
				}
			case KindCheck:
				f := fs[op.Session]
				if f == nil {
					continue
				}
				switch {
				case op.Reason == ReasonNotFound && f.login.Return < op.Call:
					r.add(Anomaly{Check: CheckLost, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
						Detail: fmt.Sprintf("%s: the acknowledged login is gone: %s", describe(op), describe(f.login))})
				case op.Active && f.definiteEnd < op.Call:
					r.add(Anomaly{Check: CheckLost, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
						Detail: fmt.Sprintf("%s: the acknowledged end of the session is gone: %s", describe(op), describe(f.definiteEndBy))})
				}
				if op.Level == Stale {
					if first, ok := agree[op.Session]; !ok {
						agree[op.Session] = op
					} else if first.Active != op.Active || first.Reason != op.Reason {
						r.add(Anomaly{Check: CheckDiverged, User: user, Session: op.Session, Node: op.Node, Op: op.ID, At: op.Call,
							Detail: fmt.Sprintf("%s disagrees with %s", describe(op), describe(first))})
					}
				}
			}
		}
	}
}

func (r *Result) add(a Anomaly) { r.Anomalies = append(r.Anomalies, a) }
