package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// ErrNotFound is returned by reads when a record does not exist or has
// expired at the given time.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("store: closed")

// Options configures Open. The zero value is the production default.
type Options struct {
	// NoSync skips fsync on every commit. FOR BENCHMARKS AND TESTS ONLY: a
	// crash or power loss can then lose applied entries or corrupt the file,
	// and since the store records the applied index it would skip entries it
	// never durably applied.
	NoSync bool
	// DeferSync commits without fsync and relies on Raft's log for
	// durability: a crash of the process loses nothing (the kernel keeps
	// what was written), and a stop of the machine makes the next Open move
	// the file aside and start empty, for Raft to restore from its snapshot
	// and log (see durability.go). Close fsyncs. Without a boot id to tell
	// a machine stop (not Linux) every commit is fsynced as without it.
	DeferSync bool
	// Logger receives the store's rare operational messages; nil discards
	// them. Secrets are never logged.
	Logger *slog.Logger
	// MaxRecordSize bounds one record's encoded size; larger records are
	// refused with ERROR_CODE_TOO_LARGE. 0 means DefaultMaxRecordSize. Every
	// node of a cluster must use the same value (it decides results).
	MaxRecordSize int
	// InitialMmapSize is bbolt's initial memory map size; 0 means 1 GiB.
	// While the file is smaller than the map, a snapshot being persisted
	// never blocks Apply.
	InitialMmapSize int
	// OpenTimeout bounds the wait for the file lock held by another process;
	// 0 means 5 s.
	OpenTimeout time.Duration
	// OnChanges, if set, is called after every committed batch, in log
	// order, with the batch's last index and the revocations it applied
	// (often none). It runs on the apply path: it must be quick and must not
	// call back into the store's apply methods.
	OnChanges func(index uint64, changes []Change)
	// OnRestore, if set, is called after a snapshot replaced the state,
	// with the restored applied index: consumers of OnChanges must resync.
	OnRestore func(index uint64)
}

// Store is the replicated state machine on one bbolt file. It implements
// raft.FSM and raft.BatchingFSM; its read methods are safe for concurrent
// use with each other, with Apply/ApplyBatch and with Restore.
type Store struct {
	path string
	opts Options
	lim  limits
	log  *slog.Logger

	// mu guards db: readers and Apply hold it shared, Restore and Close
	// exclusively while they swap or close the handle.
	mu     sync.RWMutex
	db     *bolt.DB
	closed bool

	// unsynced: commits skip fsync (DeferSync and a marker written);
	// discarded: Open moved an unsynced file aside.
	unsynced, discarded bool

	applied atomic.Uint64
	// applying is the last index of the batch being applied (applied
	// once it is done): see IndexOf.
	applying atomic.Uint64
	failure  atomic.Pointer[error]
	// idx answers token checks from memory (see checkIndex).
	idx *checkIndex
	// opTokens keeps decoded operator tokens for OperatorToken.
	opTokens opTokenCache
	counters writeCounters
}

var (
	_ raft.FSM         = (*Store)(nil)
	_ raft.BatchingFSM = (*Store)(nil)
)

// Open opens the store at path, creating the file and its buckets if
// needed, and loads the recorded applied index. A leftover temporary file
// of an interrupted Restore is removed.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxRecordSize <= 0 {
		opts.MaxRecordSize = DefaultMaxRecordSize
	}
	if opts.InitialMmapSize <= 0 {
		opts.InitialMmapSize = 1 << 30
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.Remove(restoreTempPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: remove stale restore file: %w", err)
	}
	s := &Store{path: path, opts: opts, lim: limits{maxRecordSize: opts.MaxRecordSize}, log: log}
	discarded, pending, err := s.checkUnsynced(path)
	if err != nil {
		return nil, err
	}
	s.discarded = discarded
	if opts.DeferSync && !opts.NoSync {
		// The marker is durable before the first unsynced commit.
		if s.unsynced, err = s.markUnsynced(path); err != nil {
			return nil, err
		}
	}
	db, err := s.openDB(path)
	if err != nil {
		return nil, err
	}
	if pending && !s.unsynced {
		// A process of this boot died with unsynced commits, which the page
		// cache still holds: sync them, then the marker can go.
		if err := db.Sync(); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: sync %s: %w", path, err)
		}
		if err := removeDurably(openMarkerPath(path)); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	idx, _, err := readApplied(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.idx = newCheckIndex()
	if err := s.idx.load(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: build the check index: %w", err)
	}
	s.db = db
	s.applying.Store(idx)
	s.applied.Store(idx)
	return s, nil
}

func (s *Store) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:         s.opts.OpenTimeout,
		NoSync:          s.opts.NoSync || s.unsynced,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: s.opts.InitialMmapSize,
	}
}

// openDB opens a bbolt file and makes sure every bucket and the layout
// version exist.
func (s *Store) openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, s.boltOptions())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := ensureBuckets(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func ensureBuckets(db *bolt.DB) error {
	need := false
	err := db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				need = true
			}
		}
		if m := tx.Bucket(bucketMeta); m != nil {
			v := m.Get(metaVersion)
			switch {
			case v == nil:
				need = true
			case len(v) != 4 || binary.BigEndian.Uint32(v) > layoutVersion || binary.BigEndian.Uint32(v) == 0:
				return fmt.Errorf("store: unsupported layout version %x (this binary reads versions 1 to %d)", v, layoutVersion)
			case binary.BigEndian.Uint32(v) < layoutVersion:
				need = true
			}
		}
		return nil
	})
	if err != nil || !need {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := migrateLayout(tx); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint32(nil, layoutVersion)
		return tx.Bucket(bucketMeta).Put(metaVersion, v)
	})
	if err != nil {
		return fmt.Errorf("store: create buckets: %w", err)
	}
	return nil
}

// Buckets of layout version 1 that version 2 folded into others.
var (
	bucketLiveV1       = []byte("sessions_live")
	bucketSessTokensV1 = []byte("tokens_by_session")
)

// migrateLayout brings a file of layout version 1 to the current one: the
// live slots (lp(user) | platform -> session id) move into
// sessions_by_user (lp(user) | 0x00 | platform), and the session token
// lists (lp(session) | hash) into sessions (session | 0x00 | hash). Every
// node that migrates the same state gets the same state.
func migrateLayout(tx *bolt.Tx) error {
	if old := tx.Bucket(bucketLiveV1); old != nil {
		dst := tx.Bucket(bucketUserSess)
		err := old.ForEach(func(k, v []byte) error {
			if len(k) < 2 || int(k[0]) != len(k)-2 {
				return fmt.Errorf("store: migrate: malformed live-slot key %x", k)
			}
			nk := append(append(bytes.Clone(k[:len(k)-1]), liveSlotMark), k[len(k)-1])
			return dst.Put(nk, bytes.Clone(v))
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketLiveV1); err != nil {
			return err
		}
	}
	if old := tx.Bucket(bucketSessTokensV1); old != nil {
		dst := tx.Bucket(bucketSessions)
		err := old.ForEach(func(k, _ []byte) error {
			if len(k) < 1 || len(k) < 1+int(k[0]) || k[0] == 0 {
				return fmt.Errorf("store: migrate: malformed session-token key %x", k)
			}
			n := int(k[0])
			return dst.Put(sessionTokenKey(string(k[1:1+n]), k[1+n:]), nil)
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketSessTokensV1); err != nil {
			return err
		}
	}
	return nil
}

func readApplied(db *bolt.DB) (index, term uint64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		index, term, err = appliedIn(tx)
		return err
	})
	return index, term, err
}

// appliedIn reads the recorded applied index and term in tx.
func appliedIn(tx *bolt.Tx) (index, term uint64, err error) {
	v := tx.Bucket(bucketMeta).Get(metaApplied)
	if v == nil {
		return 0, 0, nil
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("store: applied-index record of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// Close closes the bbolt file. It waits for running reads and for snapshots
// being persisted. Every later call returns ErrClosed (Apply returns it as
// the response).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var syncErr error
	if s.unsynced {
		syncErr = s.db.Sync()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	if syncErr != nil {
		// The marker stays: the next Open of another boot discards the file.
		return fmt.Errorf("store: close: sync: %w", syncErr)
	}
	if s.unsynced {
		return removeDurably(openMarkerPath(s.path))
	}
	return nil
}

// Discarded reports whether Open found the file left unsynced by a stop of
// the machine and started empty instead (Options.DeferSync).
func (s *Store) Discarded() bool { return s.discarded }

// AppliedIndex returns the Raft index of the last entry applied (command or
// configuration), as recorded durably with it. It is an atomic load.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// IndexOf runs read, which reads this store's state, and returns the
// applied index of the state it read: the index of the last batch whose
// effects it could see. Reads run concurrently with applies, so the index
// taken before a read may be older than what the read saw, and the one
// taken after may be newer; IndexOf repeats read (up to four times) until
// no batch was applied meanwhile, and otherwise returns the last index of
// the batch being applied (committed in Raft, its effects landing as the
// read ran): never older than what the read saw. read must only read, and
// may run more than once.
func (s *Store) IndexOf(read func()) uint64 {
	for range 4 {
		before := s.applied.Load()
		read()
		if s.applying.Load() == before {
			return before
		}
	}
	read()
	return s.applying.Load()
}

// Err returns the sticky storage failure that stopped the store, or nil.
// After a failure every Apply returns that error; the node must stop.
func (s *Store) Err() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) fail(err error) {
	err = fmt.Errorf("store: apply failed, store stopped: %w", err)
	s.failure.CompareAndSwap(nil, &err)
	s.log.Error("bbolt apply failed; the store refuses further entries", "error", err)
}

// skippedResult is the response for a command entry at or below the
// applied index (a replay after restart): it was applied before, and its
// original result is not kept.
var skippedResult = func() []byte {
	b, _ := marshalOpts.Marshal(&storev1.Result{Message: "already applied"})
	return b
}()

// Apply applies one log entry; it is ApplyBatch of one entry. For a
// LogCommand entry the response is the encoded *storev1.Result ([]byte) or,
// after a storage failure, an error. Other entry types return nil.
func (s *Store) Apply(l *raft.Log) interface{} {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the entries in one bbolt read-write transaction that
// also records the last entry's index and term. Entries with an index at or
// below the recorded applied index are skipped (their response is an
// encoded Result with code UNSPECIFIED and message "already applied").
// LogConfiguration entries only advance the applied index (response nil).
// If the transaction fails, nothing of the batch is applied, every command
// entry's response is the error, and the store stops (see Err).
func (s *Store) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	fillErr := func(err error) []interface{} {
		for i, l := range logs {
			if l.Type == raft.LogCommand {
				resp[i] = err
			}
		}
		return resp
	}
	if err := s.Err(); err != nil {
		return fillErr(err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fillErr(ErrClosed)
	}
	last := s.applied.Load()
	pending := 0
	for i, l := range logs {
		if l.Index <= last {
			if l.Type == raft.LogCommand {
				resp[i] = skippedResult
			}
			continue
		}
		pending++
	}
	if pending == 0 {
		return resp
	}
	// Readers may see the batch's effects from here on (IndexOf).
	s.applying.Store(logs[len(logs)-1].Index)
	var lastTerm uint64
	var changes []Change
	var ops []indexOp
	var touchedOperators bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		t, err := newBoltTxn(tx)
		if err != nil {
			return err
		}
		defer func() { changes, ops, touchedOperators = t.changes, t.ops, t.operators }()
		for i, l := range logs {
			if l.Index <= last {
				continue
			}
			t.index = l.Index
			if l.Type == raft.LogCommand {
				out, err := applyCommand(t, l.Index, l.Data, s.lim)
				if err != nil {
					return err
				}
				resp[i] = out
			}
			last, lastTerm = l.Index, l.Term
		}
		var v [16]byte
		binary.BigEndian.PutUint64(v[:], last)
		binary.BigEndian.PutUint64(v[8:], lastTerm)
		return t.b[iMeta].Put(metaApplied, v[:])
	})
	if err != nil {
		s.fail(err)
		return fillErr(s.Err())
	}
	s.counters.transactions.Add(1)
	s.counters.entries.Add(uint64(pending))
	s.idx.apply(ops)
	if touchedOperators {
		s.opTokens.invalidate()
	}
	s.applied.Store(last)
	if s.opts.OnChanges != nil {
		s.opts.OnChanges(last, changes)
	}
	return resp
}

// EncodeCommand returns the deterministic encoding of cmd, the data of a
// Raft log entry for this store.
func EncodeCommand(cmd *storev1.Command) ([]byte, error) {
	b, err := marshalOpts.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("store: encode command: %w", err)
	}
	return b, nil
}

// DecodeResult decodes an Apply response's bytes.
func DecodeResult(b []byte) (*storev1.Result, error) {
	r := new(storev1.Result)
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("store: decode result: %w", err)
	}
	return r, nil
}

// view runs fn in a bbolt read transaction, excluding Restore and Close.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

var _ io.Closer = (*Store)(nil)
