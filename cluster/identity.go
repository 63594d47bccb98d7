package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// IdentityFile is the name, under a node's DataDir, of the file that
// persists the node's identity.
const IdentityFile = "node.json"

// Identity is what a node persists about itself so that it restarts from its
// data directory without flags.
type Identity struct {
	// NodeID is the node's Raft server id.
	NodeID string `json:"node_id"`
	// Region is the region the node runs in.
	Region string `json:"region"`
}

// LoadIdentity reads DataDir/node.json. When the file does not exist the
// error wraps os.ErrNotExist; a malformed file gives a descriptive error.
func LoadIdentity(dataDir string) (Identity, error) {
	path := filepath.Join(dataDir, IdentityFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("cluster: read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("cluster: identity file %s is malformed: %w", path, err)
	}
	if err := validateName(id.NodeID); err != nil {
		return Identity{}, fmt.Errorf("cluster: identity file %s: node_id %q: %v", path, id.NodeID, err)
	}
	if err := validateName(id.Region); err != nil {
		return Identity{}, fmt.Errorf("cluster: identity file %s: region %q: %v", path, id.Region, err)
	}
	return id, nil
}

// saveIdentity writes DataDir/node.json atomically (temp file + rename).
func saveIdentity(dataDir string, id Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("cluster: encode identity: %w", err)
	}
	path := filepath.Join(dataDir, IdentityFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("cluster: write identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cluster: write identity: %w", err)
	}
	return nil
}

// resolveIdentity merges the configured identity with the persisted one:
// missing fields come from node.json, conflicting ones are an error, and a
// new identity is persisted.
func resolveIdentity(cfg *Config) error {
	stored, err := LoadIdentity(cfg.DataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if cfg.NodeID == "" || cfg.Region == "" {
			return fmt.Errorf("%w: NodeID and Region are required for a new data directory (%s has no %s)", ErrInvalidConfig, cfg.DataDir, IdentityFile)
		}
		return saveIdentity(cfg.DataDir, Identity{NodeID: cfg.NodeID, Region: cfg.Region})
	case err != nil:
		return err
	}
	if cfg.NodeID != "" && cfg.NodeID != stored.NodeID {
		return fmt.Errorf("%w: NodeID %q conflicts with %q stored in %s", ErrInvalidConfig, cfg.NodeID, stored.NodeID, filepath.Join(cfg.DataDir, IdentityFile))
	}
	if cfg.Region != "" && cfg.Region != stored.Region {
		return fmt.Errorf("%w: Region %q conflicts with %q stored in %s", ErrInvalidConfig, cfg.Region, stored.Region, filepath.Join(cfg.DataDir, IdentityFile))
	}
	cfg.NodeID, cfg.Region = stored.NodeID, stored.Region
	return nil
}
