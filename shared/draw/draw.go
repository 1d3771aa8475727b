// Package draw is the arithmetic of a draw's public record, exactly as API.md's "Draws" section
// defines it: the seed's commitment, the entrant names, the entries' digest, the rank keys, the
// ranks, and the check that a published record is consistent. It has no dependencies beyond the
// standard library, so the server and the verifier compute the same numbers from the same code,
// and an outsider can reimplement it from API.md alone.
package draw

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SeedSize is the number of random bytes in a draw's secret seed.
const SeedSize = 32

// Seed is a draw's secret seed.
type Seed [SeedSize]byte

// NewSeed returns a fresh seed from the operating system's secure random source.
func NewSeed() (Seed, error) {
	var s Seed
	if _, err := rand.Read(s[:]); err != nil {
		return Seed{}, fmt.Errorf("draw: reading a random seed: %w", err)
	}
	return s, nil
}

// Hex is the seed as API.md shows it after the draw: its 32 bytes in lower-case hex.
func (s Seed) Hex() string { return hex.EncodeToString(s[:]) }

// ParseSeed reads a seed from its 64 lower-case hex characters.
func ParseSeed(h string) (Seed, error) {
	var s Seed
	if !IsHex64(h) {
		return s, errors.New("draw: a seed is 64 lower-case hex characters")
	}
	if _, err := hex.Decode(s[:], []byte(h)); err != nil {
		return s, fmt.Errorf("draw: decoding the seed: %w", err)
	}
	return s, nil
}

// Commitment is the SHA-256 of the seed's 32 bytes (not of their hex), in lower-case hex: what a
// draw product shows as draw_commitment from the moment it becomes a draw.
func (s Seed) Commitment() string { return sum(s[:]) }

// Entrant names a shopper publicly in one product's draw: hex SHA-256 of product_id + ":" + user_id.
func Entrant(productID, userID string) string { return sum([]byte(productID + ":" + userID)) }

// Digest is draw_entries_digest: hex SHA-256 of the entrants' hex strings, sorted, joined with
// "\n" (no trailing newline; no entrants is the SHA-256 of the empty string). The order of the
// argument does not matter; it is not modified.
func Digest(entrants []string) string {
	sorted := slices.Clone(entrants)
	slices.Sort(sorted)
	return sum([]byte(strings.Join(sorted, "\n")))
}

// RankKey is the key an entrant is ranked by: hex SHA-256 of
// seed_hex + ":" + digest + ":" + beacon + ":" + entrant (beacon empty when there is none).
// Ranks 1..N follow the keys in ascending order.
func RankKey(seedHex, digest, beacon, entrant string) string {
	return sum([]byte(seedHex + ":" + digest + ":" + beacon + ":" + entrant))
}

// Ranks returns each entrant's rank (1..N) for the given seed, digest and beacon. Two entrants
// can only tie if SHA-256 collides; the tie then goes to the smaller entrant, so the result is a
// pure function of its inputs. Duplicate entrants are an error: a draw has one entry per shopper.
func Ranks(seed Seed, digest, beacon string, entrants []string) (map[string]int, error) {
	type keyed struct{ key, entrant string }
	ks := make([]keyed, 0, len(entrants))
	seen := make(map[string]bool, len(entrants))
	seedHex := seed.Hex()
	for _, e := range entrants {
		if seen[e] {
			return nil, fmt.Errorf("draw: entrant %s appears twice", e)
		}
		seen[e] = true
		ks = append(ks, keyed{RankKey(seedHex, digest, beacon, e), e})
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.entrant, b.entrant)
	})
	ranks := make(map[string]int, len(ks))
	for i, k := range ks {
		ranks[k.entrant] = i + 1
	}
	return ranks, nil
}

// IsHex64 reports whether s is 64 lower-case hex characters (a SHA-256 or a seed, as API.md shows them).
func IsHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Record is the public record of one draw, the body of GET /products/{id}/draw. Seed, ranks and
// outcomes are null until the draw; Entries is null before closes_at.
type Record struct {
	ProductID     string        `json:"product_id"`
	DrawAt        time.Time     `json:"draw_at"`
	Commitment    string        `json:"commitment"`
	EntriesDigest *string       `json:"entries_digest"`
	Beacon        *string       `json:"beacon"`
	Seed          *string       `json:"seed"`
	Entries       []RecordEntry `json:"entries"`
}

// RecordEntry is one entry as the record shows it: never the shopper, only their entrant name.
type RecordEntry struct {
	Entrant    string   `json:"entrant"`
	Rank       *int     `json:"rank"`
	VariantIDs []string `json:"variant_ids"`
	Quantity   int      `json:"quantity"`
	Outcome    *string  `json:"outcome"`
}

// ErrNotDrawn is returned (joined with any problem found) by Verify for a record whose seed is
// not shown yet: the commitment and the ranks cannot be checked before the draw.
var ErrNotDrawn = errors.New("the draw has not run yet (no seed): only the digest can be checked")

// maxRankProblems caps how many wrong ranks Verify lists one by one.
const maxRankProblems = 20

// Verify checks a published record the way an outsider would: the seed hashes to the
// commitment, the entrants hash to the digest, and every rank is the one the seed, the digest
// and the beacon give. It returns nil only if all of that holds; otherwise every problem found,
// joined. It does not check outcomes (who was offered what depends on stock and on who paid,
// which the record does not carry).
func Verify(rec Record) error {
	var problems []error
	bad := func(format string, a ...any) { problems = append(problems, fmt.Errorf(format, a...)) }

	if !IsHex64(rec.Commitment) {
		bad("commitment %q is not 64 lower-case hex characters", rec.Commitment)
	}
	if rec.Beacon != nil && (len(*rec.Beacon) < 1 || len(*rec.Beacon) > 256 || !visibleASCII(*rec.Beacon)) {
		bad("beacon %q is not 1..256 visible ASCII characters", *rec.Beacon)
	}
	if rec.Entries == nil {
		if rec.EntriesDigest != nil {
			bad("entries_digest is shown but the entries are not")
		}
		if rec.Seed != nil {
			bad("the seed is shown but the entries are not")
		}
		problems = append(problems, ErrNotDrawn)
		return errors.Join(problems...)
	}

	entrants := make([]string, 0, len(rec.Entries))
	seen := make(map[string]bool, len(rec.Entries))
	for i, e := range rec.Entries {
		if !IsHex64(e.Entrant) {
			bad("entry %d: entrant %q is not 64 lower-case hex characters", i, e.Entrant)
		}
		if seen[e.Entrant] {
			bad("entry %d: entrant %s appears twice", i, e.Entrant)
		}
		seen[e.Entrant] = true
		entrants = append(entrants, e.Entrant)
	}
	digest := Digest(entrants)
	switch {
	case rec.EntriesDigest == nil:
		bad("entries are shown but entries_digest is null")
	case *rec.EntriesDigest != digest:
		bad("entries_digest %s does not match the entrants, which hash to %s", *rec.EntriesDigest, digest)
	}

	if rec.Seed == nil {
		for i, e := range rec.Entries {
			if e.Rank != nil {
				bad("entry %d: rank shown before the seed", i)
			}
		}
		problems = append(problems, ErrNotDrawn)
		return errors.Join(problems...)
	}
	seed, err := ParseSeed(*rec.Seed)
	if err != nil {
		bad("seed %q is not 64 lower-case hex characters", *rec.Seed)
		return errors.Join(problems...)
	}
	if c := seed.Commitment(); c != rec.Commitment {
		bad("SHA-256 of the seed is %s, not the commitment %s", c, rec.Commitment)
	}
	if len(problems) > 0 {
		// Ranks computed from a digest the record does not match would only repeat the problem.
		return errors.Join(problems...)
	}
	beacon := ""
	if rec.Beacon != nil {
		beacon = *rec.Beacon
	}
	ranks, err := Ranks(seed, digest, beacon, entrants)
	if err != nil {
		return fmt.Errorf("ranking the entrants: %w", err)
	}
	wrong := 0
	for i, e := range rec.Entries {
		want := ranks[e.Entrant]
		switch {
		case e.Rank == nil:
			wrong++
			if wrong <= maxRankProblems {
				bad("entry %d (%s): rank is null, want %d", i, e.Entrant, want)
			}
		case *e.Rank != want:
			wrong++
			if wrong <= maxRankProblems {
				bad("entry %d (%s): rank %d, want %d", i, e.Entrant, *e.Rank, want)
			}
		}
	}
	if wrong > maxRankProblems {
		bad("%d more wrong ranks", wrong-maxRankProblems)
	}
	return errors.Join(problems...)
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Publish builds the record of a draw that has run: the commitment, the digest and the seed
// shown, and every entry's rank set from them. Entries keep their order and outcomes.
func Publish(productID string, drawAt time.Time, seed Seed, beacon *string, entries []RecordEntry) (Record, error) {
	entrants := make([]string, len(entries))
	for i, e := range entries {
		entrants[i] = e.Entrant
	}
	digest := Digest(entrants)
	b := ""
	if beacon != nil {
		b = *beacon
	}
	ranks, err := Ranks(seed, digest, b, entrants)
	if err != nil {
		return Record{}, err
	}
	out := make([]RecordEntry, len(entries))
	for i, e := range entries {
		r := ranks[e.Entrant]
		e.Rank = &r
		out[i] = e
	}
	seedHex := seed.Hex()
	return Record{
		ProductID: productID, DrawAt: drawAt.UTC(), Commitment: seed.Commitment(),
		EntriesDigest: &digest, Beacon: beacon, Seed: &seedHex, Entries: out,
	}, nil
}
