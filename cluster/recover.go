package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// Offline operations on a node's data dir: the node must not be running
// (the FSM's file lock, held by a running node, protects the state file;
// the callers open it first).

// openOffline opens the Raft stores of dataDir for an offline operation.
func openOffline(dataDir string, logger *slog.Logger) (*logStore, *raft.FileSnapshotStore, error) {
	if logger == nil {
		logger = slog.Default()
	}
	hlog := newHCLogger(logger, "raft")
	walDir := filepath.Join(dataDir, "raft", "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cluster: create %s: %w", walDir, err)
	}
	store, err := openLogStore(walDir, hlog.Named("wal"))
	if err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dataDir, "raft"), 2, hlog.Named("snapshot"))
	if err != nil {
		_ = store.Close()
		return nil, nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	return store, snaps, nil
}

// SeedConfig describes the first node of a new cluster made from a backup.
type SeedConfig struct {
	// DataDir is the new node's data dir: it must hold no Raft state and
	// no cluster id.
	DataDir string
	// NodeID and Region are the new node's identity.
	NodeID, Region string
	// RaftAddr is the peer address the node will advertise (its raft_addr
	// or advertise_raft): the new configuration lists it there.
	RaftAddr string
	// Index and Term are those of the last entry the backed-up state
	// reflects.
	Index, Term uint64
	// Logger receives Raft's logs; nil means slog.Default().
	Logger *slog.Logger
}

// SeedNewCluster makes DataDir the first node of a new cluster whose state
// is a backup: it writes a Raft snapshot at Index and Term whose content is
// snapshot (the FSM's framed snapshot, as the FSM's Persist writes it; the
// caller has already put the same state in the FSM's own file), whose
// configuration is this node alone as a voter, records Term as the current
// term, and stores the identity with a NEW cluster id, which it returns.
// Started, the node elects itself and serves the restored state; other
// nodes join it. It refuses a data dir that already has Raft state or a
// cluster id: restoring over a cluster's data is never done in place.
func SeedNewCluster(cfg SeedConfig, snapshot io.Reader) (string, error) {
	if err := validateName(cfg.NodeID); err != nil {
		return "", fmt.Errorf("%w: node id %q: %v", ErrInvalidArgument, cfg.NodeID, err)
	}
	if err := ValidateRegion(cfg.Region); err != nil {
		return "", fmt.Errorf("%w: region %q: %v", ErrInvalidArgument, cfg.Region, err)
	}
	if err := ValidateAddr(cfg.RaftAddr); err != nil {
		return "", fmt.Errorf("%w: raft address %q: %v", ErrInvalidArgument, cfg.RaftAddr, err)
	}
	if cfg.Index == 0 {
		return "", fmt.Errorf("%w: the backup is of an empty state (index 0)", ErrInvalidArgument)
	}
	if id, err := LoadIdentity(cfg.DataDir); err == nil && id.ClusterID != "" {
		return "", fmt.Errorf("%w: %s belongs to cluster %s: restore only into an empty data dir (a new cluster)", ErrAlreadyExists, cfg.DataDir, id.ClusterID)
	}
	store, snaps, err := openOffline(cfg.DataDir, cfg.Logger)
	if err != nil {
		return "", err
	}
	defer store.Close()
	if has, err := raft.HasExistingState(store, store, snaps); err != nil {
		return "", fmt.Errorf("cluster: seed: %w", err)
	} else if has {
		return "", fmt.Errorf("%w: %s holds Raft state: restore only into an empty data dir (a new cluster)", ErrAlreadyExists, cfg.DataDir)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.RaftAddr)}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.RaftAddr))
	sink, err := snaps.Create(raft.SnapshotVersionMax, cfg.Index, cfg.Term, conf, cfg.Index, trans)
	if err != nil {
		return "", fmt.Errorf("cluster: seed: create snapshot: %w", err)
	}
	if _, err := io.Copy(sink, snapshot); err != nil {
		_ = sink.Cancel()
		return "", fmt.Errorf("cluster: seed: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return "", fmt.Errorf("cluster: seed: write snapshot: %w", err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), cfg.Term); err != nil {
		return "", fmt.Errorf("cluster: seed: record the term: %w", err)
	}
	id, err := newClusterID()
	if err != nil {
		return "", err
	}
	if err := saveIdentity(cfg.DataDir, Identity{NodeID: cfg.NodeID, Region: cfg.Region, ClusterID: id}); err != nil {
		return "", err
	}
	return id, nil
}

// RecoveryServer is one server of a recovery configuration.
type RecoveryServer struct {
	// ID is the node id.
	ID string `json:"id"`
	// Address is its peer address (host:port).
	Address string `json:"address"`
	// NonVoter makes it a non-voter (default: voter).
	NonVoter bool `json:"non_voter,omitempty"`
}

// RecoverConfiguration rewrites the Raft configuration of the stopped node
// in dataDir to servers, for outage recovery when a quorum is permanently
// lost (hashicorp/raft's RecoverCluster, like Consul's peers.json or
// etcd's --force-new-cluster). It restores fsm from the newest snapshot,
// applies every entry of the log (committed or not: entries the lost
// quorum never committed may be applied), takes a snapshot with the new
// configuration and empties the log. Run it on every surviving node with
// the same servers, then start them: they elect a leader among themselves.
// servers must list localID and at least one voter. The cluster id is
// kept. fsm must be the node's own state machine, opened by the caller
// (which proves the node is stopped).
func RecoverConfiguration(dataDir, localID string, servers []RecoveryServer, fsm raft.FSM, logger *slog.Logger) error {
	conf := raft.Configuration{}
	self := false
	for _, s := range servers {
		if err := checkServer(s.ID, s.Address); err != nil {
			return err
		}
		sf := raft.Voter
		if s.NonVoter {
			sf = raft.Nonvoter
		}
		self = self || s.ID == localID
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: sf, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	if !self {
		return fmt.Errorf("%w: the recovery configuration does not list this node %q", ErrInvalidArgument, localID)
	}
	store, snaps, err := openOffline(dataDir, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(localID)
	rc.Logger = newHCLogger(cmpLogger(logger), "raft")
	_, trans := raft.NewInmemTransport("")
	if err := raft.RecoverCluster(rc, releasingFSM{fsm}, store, store, snaps, trans, conf); err != nil {
		return fmt.Errorf("cluster: recover: %w", err)
	}
	return nil
}

// releasingFSM releases the snapshot RecoverCluster takes once persisted
// (RecoverCluster never calls Release, and an unreleased snapshot of the
// store holds a read transaction that blocks closing it).
type releasingFSM struct{ raft.FSM }

func (f releasingFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return releaseAfterPersist{s}, nil
}

type releaseAfterPersist struct{ raft.FSMSnapshot }

func (s releaseAfterPersist) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	return s.FSMSnapshot.Persist(sink)
}

func cmpLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
