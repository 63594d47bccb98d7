package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds enforced on parameters, both for hashing and for parsing stored PHC
// strings. A stored hash outside them is refused rather than evaluated, so a
// hostile or corrupt row cannot make the server allocate gigabytes or spin
// for minutes.
const (
	// MaxMemoryKiB is the largest accepted Memory parameter: 1 GiB.
	MaxMemoryKiB = 1 << 20
	// MaxTime is the largest accepted Time (iterations) parameter.
	MaxTime = 64
	// MaxThreads is the largest accepted Threads (parallelism) parameter.
	MaxThreads = 64
	// MinSaltLen and MaxSaltLen bound the salt length in bytes.
	MinSaltLen, MaxSaltLen = 8, 64
	// MinKeyLen and MaxKeyLen bound the derived key (hash) length in bytes.
	MinKeyLen, MaxKeyLen = 16, 64
	// MaxPHCLen bounds the length of a PHC string accepted by ParsePHC.
	MaxPHCLen = 512
)

// ErrMalformedHash is returned (wrapped) for a PHC string that is not a
// well-formed argon2id v=19 hash within the accepted bounds.
var ErrMalformedHash = errors.New("password: malformed argon2id PHC string")

// b64 is the PHC encoding: standard alphabet, no padding, canonical (strict).
var b64 = base64.RawStdEncoding.Strict()

// Params are argon2id cost parameters.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism (lanes).
	Threads uint8
	// SaltLen is the length of the random salt in bytes.
	SaltLen uint32
	// KeyLen is the length of the derived hash in bytes.
	KeyLen uint32
}

// DefaultParams returns the OWASP minimum recommendation for argon2id:
// m=19456 KiB (19 MiB), t=2, p=1, with a 16-byte salt and 32-byte hash.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports whether p lies within the accepted bounds: 1 <= Threads
// <= MaxThreads, 8*Threads <= Memory <= MaxMemoryKiB, 1 <= Time <= MaxTime,
// MinSaltLen <= SaltLen <= MaxSaltLen and MinKeyLen <= KeyLen <= MaxKeyLen.
// The error wraps ErrMalformedHash.
func (p Params) Validate() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: threads %d outside [1,%d]", ErrMalformedHash, p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemoryKiB:
		return fmt.Errorf("%w: memory %d KiB outside [%d,%d]", ErrMalformedHash, p.Memory, 8*uint32(p.Threads), MaxMemoryKiB)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: time %d outside [1,%d]", ErrMalformedHash, p.Time, MaxTime)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("%w: salt length %d outside [%d,%d]", ErrMalformedHash, p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("%w: key length %d outside [%d,%d]", ErrMalformedHash, p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// PHC is a decoded argon2id hash: its parameters, salt and derived key.
// Params.SaltLen and Params.KeyLen equal len(Salt) and len(Hash).
type PHC struct {
	Params Params
	Salt   []byte
	Hash   []byte
}

// String encodes h as `$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>` with
// salt and hash in unpadded standard base64.
func (h PHC) String() string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		h.Params.Memory, h.Params.Time, h.Params.Threads, b64.EncodeToString(h.Salt), b64.EncodeToString(h.Hash))
}

// ParsePHC decodes an argon2id PHC string as produced by PHC.String. It is
// strict: exactly the fields `$argon2id$v=19$m=..,t=..,p=..$salt$hash` in
// that order, decimal numbers without sign or leading zeros, canonical
// unpadded standard base64, at most MaxPHCLen bytes, and parameters within
// Params.Validate bounds. Any other input yields an error wrapping
// ErrMalformedHash; ParsePHC never panics.
func ParsePHC(s string) (PHC, error) {
	if len(s) > MaxPHCLen {
		return PHC{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHash, MaxPHCLen)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return PHC{}, fmt.Errorf("%w: want 5 '$'-separated fields", ErrMalformedHash)
	}
	if parts[1] != "argon2id" {
		return PHC{}, fmt.Errorf("%w: algorithm is not argon2id", ErrMalformedHash)
	}
	if parts[2] != "v=19" {
		return PHC{}, fmt.Errorf("%w: version is not v=19", ErrMalformedHash)
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return PHC{}, fmt.Errorf("%w: want parameters m,t,p", ErrMalformedHash)
	}
	var nums [3]uint32
	for i, name := range [3]string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return PHC{}, fmt.Errorf("%w: parameter %d is not %s", ErrMalformedHash, i+1, name)
		}
		n, err := parseDecimal(v)
		if err != nil {
			return PHC{}, fmt.Errorf("%w: parameter %s: %w", ErrMalformedHash, name, err)
		}
		nums[i] = n
	}
	if nums[2] > MaxThreads {
		return PHC{}, fmt.Errorf("%w: threads %d above %d", ErrMalformedHash, nums[2], MaxThreads)
	}
	salt, err := decodeField(parts[4], MaxSaltLen)
	if err != nil {
		return PHC{}, fmt.Errorf("%w: salt: %w", ErrMalformedHash, err)
	}
	hash, err := decodeField(parts[5], MaxKeyLen)
	if err != nil {
		return PHC{}, fmt.Errorf("%w: hash: %w", ErrMalformedHash, err)
	}
	p := Params{Memory: nums[0], Time: nums[1], Threads: uint8(nums[2]), SaltLen: uint32(len(salt)), KeyLen: uint32(len(hash))}
	if err := p.Validate(); err != nil {
		return PHC{}, err
	}
	return PHC{Params: p, Salt: salt, Hash: hash}, nil
}

// parseDecimal parses a canonical unsigned decimal of at most 10 digits that
// fits in a uint32.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a canonical decimal")
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return uint32(n), nil
}

// decodeField decodes canonical unpadded standard base64 of at most max bytes.
func decodeField(s string, max int) ([]byte, error) {
	if len(s) > b64.EncodedLen(max) || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("too long or contains line breaks")
	}
	return b64.DecodeString(s)
}
