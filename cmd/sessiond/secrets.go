package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sessiond/sessiond/authsvc/keys"
)

// readSecretFile reads a secret from a file, trimming surrounding space.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// loadKEK resolves the key-encryption key: SESSIOND_KEK, else kek-file.
// In dev mode a missing KEK is generated once and kept in the data dir, so
// a dev node restarts with the keys it sealed.
func (c *Config) loadKEK() (keys.KEK, error) {
	switch {
	case c.kek != "":
		k, err := keys.ParseKEK(c.kek)
		if err != nil {
			return keys.KEK{}, fmt.Errorf("SESSIOND_KEK: %w", err)
		}
		return k, nil
	case c.KEKFile != "":
		k, err := keys.LoadKEKFile(c.KEKFile)
		if err != nil {
			return keys.KEK{}, fmt.Errorf("kek-file: %w", err)
		}
		return k, nil
	case c.dev:
		path := filepath.Join(c.DataDir, "dev-kek")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			var raw [32]byte
			if _, err := rand.Read(raw[:]); err != nil {
				return keys.KEK{}, err
			}
			if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw[:])+"\n"), 0o600); err != nil {
				return keys.KEK{}, fmt.Errorf("dev KEK: %w", err)
			}
		}
		return keys.LoadKEKFile(path)
	default:
		return keys.KEK{}, errors.New("key-encryption key: set kek-file or SESSIOND_KEK")
	}
}

// gossipKey reads the gossip encryption key: SESSIOND_GOSSIP_KEY, else
// gossip-key-file; none in insecure-plaintext mode. A dev node without one
// uses a key generated once in its data dir.
func (c *Config) gossipKey() ([]byte, error) {
	s := c.gossipKeyEnv
	switch {
	case s != "":
	case c.GossipKeyFile != "":
		var err error
		if s, err = readSecretFile(c.GossipKeyFile); err != nil {
			return nil, fmt.Errorf("gossip-key-file: %w", err)
		}
	case c.InsecurePlaintext:
		return nil, nil
	default:
		return nil, errors.New("gossip key: set gossip-key-file or SESSIOND_GOSSIP_KEY")
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip-key-file: not base64: %w", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip-key-file: key is %d bytes, want 16, 24 or 32", n)
	}
	return k, nil
}
