package store

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt")

// TestScripts runs testdata/*.txt. Format: a line "cmd args..." followed by
// "----" and the expected output up to a blank line; "now +DUR" (no output)
// sets the clock to t0+DUR; '#' lines are comments. Commands and their
// arguments are documented in (*scriptRunner).run.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	r := &scriptRunner{t: t, s: openTemp(t, "script.db"), now: t0, toks: map[string]string{}}
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmdLine, lineNo := line, i+1
		var want []string
		if i+1 < len(lines) && lines[i+1] == "----" {
			i += 2
			for ; i < len(lines) && lines[i] != ""; i++ {
				want = append(want, lines[i])
			}
		}
		got := r.run(cmdLine)
		out.WriteString(cmdLine + "\n")
		if len(got) > 0 {
			out.WriteString("----\n" + strings.Join(got, "\n") + "\n\n")
		}
		if !*rewrite {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s:%d: %s: output mismatch (-want +got):\n%s", file, lineNo, cmdLine, diff)
			}
		}
	}
	if *rewrite {
		s := strings.TrimRight(out.String(), "\n") + "\n"
		// collapse the blank line written after a block when a blank line followed anyway
		for strings.Contains(s, "\n\n\n") {
			s = strings.ReplaceAll(s, "\n\n\n", "\n\n")
		}
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type scriptRunner struct {
	t    *testing.T
	s    *Store
	now  time.Time
	toks map[string]string // hex(hash) -> token name
	mark string
}

func (r *scriptRunner) fail(format string, args ...any) []string {
	r.t.Helper()
	r.t.Fatalf(format, args...)
	return nil
}

func parseDur(s string) (time.Duration, error) {
	return time.ParseDuration(strings.TrimPrefix(s, "+"))
}

func parsePlatform(s string) storev1.Platform {
	return storev1.Platform(storev1.Platform_value["PLATFORM_"+strings.ToUpper(s)])
}

func parseReason(s string) storev1.EndReason {
	return storev1.EndReason(storev1.EndReason_value["END_REASON_"+strings.ToUpper(s)])
}

// args splits "a b k=v flag" into positionals and key/values (flags map to "").
func splitArgs(fields []string) ([]string, map[string]string) {
	var pos []string
	kv := map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else if len(pos) > 0 && (f == "force") {
			kv[f] = ""
		} else {
			pos = append(pos, f)
		}
	}
	return pos, kv
}

func (r *scriptRunner) durArg(kv map[string]string, key string, def time.Duration) time.Duration {
	v, ok := kv[key]
	if !ok {
		return def
	}
	d, err := parseDur(v)
	if err != nil {
		r.t.Fatalf("bad %s=%q: %v", key, v, err)
	}
	return d
}

func (r *scriptRunner) tok(name string) []byte {
	h := tokHash(name)
	r.toks[string(h)] = name
	return h
}

func (r *scriptRunner) tokName(h []byte) string {
	if len(h) == 0 {
		return "-"
	}
	if n, ok := r.toks[string(h)]; ok {
		return n
	}
	return fmt.Sprintf("%x", h[:4])
}

func (r *scriptRunner) rel(ns int64) string {
	if ns == 0 {
		return "0"
	}
	return "+" + time.Unix(0, ns).Sub(t0).String()
}

func (r *scriptRunner) fmtSession(s *storev1.Session) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s user=%s %s dev=%s gen=%d idle=%s abs=%s",
		s.GetId(), s.GetUserId(), strings.ToLower(strings.TrimPrefix(s.GetPlatform().String(), "PLATFORM_")),
		s.GetDeviceId(), s.GetRefreshGeneration(), r.rel(s.GetIdleExpiresUnixNano()), r.rel(s.GetAbsoluteExpiresUnixNano()))
	if s.GetEndedUnixNano() != 0 {
		fmt.Fprintf(&b, " ended=%s %s", r.rel(s.GetEndedUnixNano()), strings.TrimPrefix(s.GetEndReason().String(), "END_REASON_"))
		if s.GetEndedBySessionId() != "" {
			fmt.Fprintf(&b, " by=%s", s.GetEndedBySessionId())
		}
	} else {
		b.WriteString(" live")
	}
	return b.String()
}

func (r *scriptRunner) fmtToken(tk *storev1.RefreshToken) string {
	s := fmt.Sprintf("%s session=%s gen=%d exp=%s", r.tokName(tk.GetIdHash()), tk.GetSessionId(), tk.GetGeneration(), r.rel(tk.GetExpiresUnixNano()))
	if tk.GetUsedUnixNano() != 0 {
		// Spent by a rotation of layout 2, which marked the token.
		s += fmt.Sprintf(" used=%s next=%s", r.rel(tk.GetUsedUnixNano()), r.tokName(tk.GetReplacedByHash()))
	} else if sess, err := r.s.Session(tk.GetSessionId(), r.now); err == nil && RefreshSpent(tk, sess) {
		s += " spent"
	}
	return s
}

func (r *scriptRunner) fmtResult(res *storev1.Result) []string {
	head := "OK"
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		head = strings.TrimPrefix(res.GetCode().String(), "ERROR_CODE_") + fmt.Sprintf(" %q", res.GetMessage())
	}
	if len(res.GetEndedSessionIds()) > 0 {
		head += " ended=" + strings.Join(res.GetEndedSessionIds(), ",")
	}
	if res.GetGraceRetry() {
		head += " grace_retry"
	}
	if res.GetPurged() != 0 || res.GetMore() {
		head += fmt.Sprintf(" purged=%d more=%v", res.GetPurged(), res.GetMore())
	}
	out := []string{head}
	if res.GetSession() != nil {
		out = append(out, "  session: "+r.fmtSession(res.GetSession()))
	}
	if res.GetRefresh() != nil {
		out = append(out, "  refresh: "+r.fmtToken(res.GetRefresh()))
	}
	if res.GetUser() != nil {
		out = append(out, "  user: "+res.GetUser().GetId()+" "+res.GetUser().GetEmailKey())
	}
	return out
}

func (r *scriptRunner) apply(c *storev1.Command, rid string) []string {
	c.NowUnixNano = r.now.UnixNano()
	c.RequestId = rid
	b, err := EncodeCommand(c)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.applyRaw(b)
}

func (r *scriptRunner) applyRaw(b []byte) []string {
	idx := r.s.AppliedIndex() + 1
	resp := r.s.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b})
	rb, ok := resp.([]byte)
	if !ok {
		return r.fail("Apply returned %T %v", resp, resp)
	}
	res, err := DecodeResult(rb)
	if err != nil {
		return r.fail("%v", err)
	}
	return r.fmtResult(res)
}

func readErr(err error) []string {
	if errors.Is(err, ErrNotFound) {
		return []string{"not found"}
	}
	return []string{"error: " + err.Error()}
}

// run executes one script command and returns its output lines.
//
// Writes (each applies one log entry; rid=ID sets request_id):
//
//	open SID user=U plat=web dev=D tok=T [idle=30m] [abs=24h] [texp=DUR] [force]
//	rotate OLD NEW [idle=30m] [grace=10s] [texp=DUR]
//	end SID [reason=logout]
//	endall USER [reason=logout_all] [cutoff=1h]
//	revoke JTI exp=DUR
//	key KID exp=DUR
//	user ID email=KEY
//	purge LIMIT
//	garbage | unknownop | toolarge   (bad input)
//
// Reads: session SID, live USER PLAT, sessions USER, refresh TOK,
// revocation JTI, cutoff USER, keys, getuser ID, email KEY, users,
// hasexpired, counts (records per bucket), mark / same (state unchanged
// since mark?).
func (r *scriptRunner) run(line string) []string {
	fields := strings.Fields(line)
	pos, kv := splitArgs(fields[1:])
	arg := func(i int) string {
		if i >= len(pos) {
			r.t.Fatalf("%q: missing argument %d", line, i+1)
		}
		return pos[i]
	}
	rid := kv["rid"]
	now := r.now
	switch fields[0] {
	case "now":
		d, err := parseDur(arg(0))
		if err != nil {
			return r.fail("%q: %v", line, err)
		}
		r.now = t0.Add(d)
		return nil
	case "open":
		idle, abs := r.durArg(kv, "idle", 30*time.Minute), r.durArg(kv, "abs", 24*time.Hour)
		texp := r.durArg(kv, "texp", idle)
		_, force := kv["force"]
		c := openCmd(now, arg(0), kv["user"], parsePlatform(kv["plat"]), kv["dev"], "", idle, abs, force)
		c.GetOpenSession().Refresh = &storev1.RefreshToken{IdHash: r.tok(kv["tok"]), ExpiresUnixNano: now.Add(texp).UnixNano()}
		return r.apply(c, rid)
	case "rotate":
		idle := r.durArg(kv, "idle", 30*time.Minute)
		texp := r.durArg(kv, "texp", idle)
		return r.apply(&storev1.Command{Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
			OldIdHash:           r.tok(arg(0)),
			Next:                &storev1.RefreshToken{IdHash: r.tok(arg(1)), ExpiresUnixNano: now.Add(texp).UnixNano()},
			IdleExpiresUnixNano: now.Add(idle).UnixNano(),
			GraceNanos:          int64(r.durArg(kv, "grace", 10*time.Second)),
		}}}, rid)
	case "end":
		reason := "logout"
		if v, ok := kv["reason"]; ok {
			reason = v
		}
		return r.apply(&storev1.Command{Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{
			SessionId: arg(0), Reason: parseReason(reason)}}}, rid)
	case "endall":
		reason := "logout_all"
		if v, ok := kv["reason"]; ok {
			reason = v
		}
		return r.apply(&storev1.Command{Op: &storev1.Command_EndUserSessions{EndUserSessions: &storev1.EndUserSessions{
			UserId: arg(0), Reason: parseReason(reason), CutoffExpiresUnixNano: now.Add(r.durArg(kv, "cutoff", time.Hour)).UnixNano()}}}, rid)
	case "revoke":
		return r.apply(&storev1.Command{Op: &storev1.Command_RevokeToken{RevokeToken: &storev1.RevokeToken{Revocation: &storev1.Revocation{
			Jti: arg(0), ExpiresUnixNano: now.Add(r.durArg(kv, "exp", time.Hour)).UnixNano(), Reason: "test"}}}}, rid)
	case "key":
		return r.apply(&storev1.Command{Op: &storev1.Command_PutSigningKey{PutSigningKey: &storev1.PutSigningKey{Key: &storev1.SigningKey{
			Kid: arg(0), Algorithm: "ed25519", PublicKey: []byte(fmt.Sprintf("%-32s", "pub-"+arg(0))), CreatedUnixNano: now.UnixNano(),
			ExpiresUnixNano: now.Add(r.durArg(kv, "exp", time.Hour)).UnixNano(), Purpose: "access"}}}}, rid)
	case "user":
		return r.apply(&storev1.Command{Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: &storev1.User{
			Id: arg(0), Email: kv["email"], EmailKey: kv["email"], Status: storev1.UserStatus_USER_STATUS_ACTIVE}}}}, rid)
	case "purge":
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			return r.fail("%q: %v", line, err)
		}
		return r.apply(&storev1.Command{Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: uint32(n)}}}, rid)
	case "garbage":
		return r.applyRaw([]byte{0xff, 0xff, 0xff, 0x01, 0x02})
	case "unknownop":
		// A command from a newer version: field 99 is unknown here, so the
		// oneof stays empty.
		b := mustEncode(r.t, &storev1.Command{NowUnixNano: now.UnixNano(), RequestId: rid})
		b = append(b, 0x9a, 0x06, 0x02, 0x08, 0x01) // field 99, bytes {08 01}
		return r.applyRaw(b)
	case "toolarge":
		u := &storev1.User{Id: "big", EmailKey: "big@x", DisplayName: strings.Repeat("x", DefaultMaxRecordSize)}
		return r.apply(&storev1.Command{Op: &storev1.Command_PutUser{PutUser: &storev1.PutUser{User: u}}}, rid)

	case "session":
		s, err := r.s.Session(arg(0), now)
		if err != nil {
			return readErr(err)
		}
		return []string{r.fmtSession(s)}
	case "live":
		s, err := r.s.LiveSession(arg(0), parsePlatform(arg(1)), now)
		if err != nil {
			return readErr(err)
		}
		return []string{r.fmtSession(s)}
	case "sessions":
		ss, err := r.s.UserSessions(arg(0), now)
		if err != nil {
			return readErr(err)
		}
		out := []string{fmt.Sprintf("%d live", len(ss))}
		for _, s := range ss {
			out = append(out, "  "+r.fmtSession(s))
		}
		return out
	case "refresh":
		tk, err := r.s.RefreshToken(r.tok(arg(0)), now)
		if err != nil {
			return readErr(err)
		}
		return []string{r.fmtToken(tk)}
	case "revocation":
		rv, err := r.s.Revocation(arg(0), now)
		if err != nil {
			return readErr(err)
		}
		return []string{fmt.Sprintf("%s revoked=%s exp=%s", rv.GetJti(), r.rel(rv.GetRevokedUnixNano()), r.rel(rv.GetExpiresUnixNano()))}
	case "cutoff":
		nb, err := r.s.UserCutoff(arg(0), now)
		if err != nil {
			return readErr(err)
		}
		return []string{"not_before=" + r.rel(nb)}
	case "keys":
		ks, err := r.s.SigningKeys(now)
		if err != nil {
			return readErr(err)
		}
		out := []string{fmt.Sprintf("%d keys", len(ks))}
		for _, k := range ks {
			out = append(out, "  "+k.GetKid()+" exp="+r.rel(k.GetExpiresUnixNano()))
		}
		return out
	case "getuser":
		u, err := r.s.User(arg(0))
		if err != nil {
			return readErr(err)
		}
		return []string{u.GetId() + " " + u.GetEmailKey()}
	case "email":
		u, err := r.s.UserByEmail(arg(0))
		if err != nil {
			return readErr(err)
		}
		return []string{u.GetId() + " " + u.GetEmailKey()}
	case "users":
		us, err := r.s.Users()
		if err != nil {
			return readErr(err)
		}
		var ids []string
		for _, u := range us {
			ids = append(ids, u.GetId())
		}
		return []string{"users: " + strings.Join(ids, ",")}
	case "hasexpired":
		return []string{strconv.FormatBool(r.s.HasExpired(now))}
	case "counts":
		return []string{r.counts()}
	case "mark":
		r.mark = stateHash(r.t, r.s, false)
		return []string{"marked"}
	case "same":
		if stateHash(r.t, r.s, false) == r.mark {
			return []string{"unchanged"}
		}
		return []string{"CHANGED"}
	}
	return r.fail("unknown script command %q", line)
}

func (r *scriptRunner) counts() string {
	var b bytes.Buffer
	err := r.s.view(func(tx *bolt.Tx) error {
		// The sessions and their token lists share a bucket; they are
		// counted apart, in the order of layout version 1's buckets.
		tokens := 0
		for _, name := range allBuckets[1:] {
			n := tx.Bucket(name).Stats().KeyN
			if string(name) == string(bucketSessions) {
				s := countSessions(tx)
				n, tokens = s, n-s
			}
			fmt.Fprintf(&b, "%s=%d ", name, n)
			if string(name) == string(bucketUserSess) {
				fmt.Fprintf(&b, "%s=%d ", bucketSessTokensV1, tokens)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}
