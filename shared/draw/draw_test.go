package draw

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// The expected values below were computed independently with Python's hashlib, from API.md's
// wording, not from this package.
func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	var seed Seed
	for i := range seed {
		seed[i] = byte(i)
	}
	alice, bob, carol := Entrant("p1", "alice"), Entrant("p1", "bob"), Entrant("p1", "carol")
	digest := Digest([]string{alice, bob, carol})
	for _, c := range []struct{ name, got, want string }{
		{"commitment", seed.Commitment(), "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"},
		{"seed hex", seed.Hex(), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
		{"entrant alice", alice, "6842aa1ea1a2dd17466600864a0863596b319527bb1542621857daf40f4bf37c"},
		{"entrant bob", bob, "9499f560b75b62fd20a08f45397523277378e2aa6a3b8b812c79b66bbffa74eb"},
		{"entrant carol", carol, "3fea5f339c565dc992f70d82143af374e5357e9eb0b9e11a3d7785a3a338cea6"},
		{"digest", digest, "d1bc6be2efbd4a8c3262e089654bc2262a1ddf09b1089000bbd02acd0a37d2db"},
		{"digest in another order", Digest([]string{carol, alice, bob}), digest},
		{"digest of nothing", Digest(nil), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		beacon string
		order  []string
	}{
		{"", []string{bob, carol, alice}},
		{"round-123", []string{alice, bob, carol}},
	} {
		ranks, err := Ranks(seed, digest, c.beacon, []string{alice, bob, carol})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range c.order {
			if ranks[e] != i+1 {
				t.Errorf("beacon %q: rank of %s = %d, want %d", c.beacon, e, ranks[e], i+1)
			}
		}
	}
}

func TestSeedRoundTripAndRandomness(t *testing.T) {
	t.Parallel()
	a, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two fresh seeds are equal")
	}
	back, err := ParseSeed(a.Hex())
	if err != nil || back != a {
		t.Fatalf("ParseSeed(Hex()) = %x, %v; want %x", back, err, a)
	}
	for _, bad := range []string{"", strings.Repeat("0", 63), strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("0", 65)} {
		if _, err := ParseSeed(bad); err == nil {
			t.Errorf("ParseSeed(%q) accepted", bad)
		}
	}
}

func TestRanksRefusesDuplicates(t *testing.T) {
	t.Parallel()
	e := Entrant("p1", "alice")
	if _, err := Ranks(Seed{}, Digest([]string{e, e}), "", []string{e, e}); err == nil {
		t.Fatal("a duplicate entrant was ranked")
	}
}

// testSeed is a reproducible seed for draw number i of a test (so the statistical tests cannot
// flake: the same seeds give the same statistic every run).
func testSeed(label string, i int) Seed {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return Seed(sha256.Sum256(append([]byte(label+":"), b[:]...)))
}

// Entering early or late changes nothing: the ranks depend on the set of entrants only, never on
// the order they entered in, so every permutation of the same entries ranks identically.
func TestOrderOfEntryChangesNothing(t *testing.T) {
	t.Parallel()
	entrants := make([]string, 50)
	for i := range entrants {
		entrants[i] = Entrant("p1", fmt.Sprintf("user-%d", i))
	}
	seed := testSeed("order", 0)
	want, err := Ranks(seed, Digest(entrants), "", entrants)
	if err != nil {
		t.Fatal(err)
	}
	perm := slices.Clone(entrants)
	for round := range 20 {
		s := testSeed("perm", round)
		for i := len(perm) - 1; i > 0; i-- { // Fisher-Yates driven by the hash, reproducible
			j := int(binary.BigEndian.Uint64(s[:8]) % uint64(i+1))
			perm[i], perm[j] = perm[j], perm[i]
			s = sha256.Sum256(s[:])
		}
		if Digest(perm) != Digest(entrants) {
			t.Fatal("the digest depends on the order of entry")
		}
		got, err := Ranks(seed, Digest(perm), "", perm)
		if err != nil {
			t.Fatal(err)
		}
		for e, r := range want {
			if got[e] != r {
				t.Fatalf("round %d: entrant %s ranked %d, %d in entry order", round, e, got[e], r)
			}
		}
	}
}

// chiSquareP is the upper-tail probability of the chi-square distribution with dof degrees of
// freedom at x: Q(dof/2, x/2), the regularized upper incomplete gamma function (series below
// a+1, Lentz's continued fraction above).
func chiSquareP(x float64, dof int) float64 {
	a, z := float64(dof)/2, x/2
	if z <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if z < a+1 {
		sum, term := 1/a, 1/a
		for n := 1; n < 1000; n++ {
			term *= z / (a + float64(n))
			sum += term
			if term < sum*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-z+a*math.Log(z)-lg)
	}
	const tiny = 1e-300
	b := z + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-z+a*math.Log(z)-lg) * h
}

func TestChiSquareP(t *testing.T) {
	t.Parallel()
	// Critical values from any chi-square table.
	for _, c := range []struct {
		x    float64
		dof  int
		want float64
	}{
		{3.841, 1, 0.05}, {6.635, 1, 0.01}, {18.307, 10, 0.05}, {29.588, 10, 0.001},
		{124.342, 100, 0.05}, {149.449, 100, 0.001}, {100, 100, 0.481},
	} {
		if got := chiSquareP(c.x, c.dof); math.Abs(got-c.want) > 0.001 {
			t.Errorf("chiSquareP(%v, %d) = %.4f, want %.3f", c.x, c.dof, got, c.want)
		}
	}
}

// alpha is the fixed significance of the uniformity tests: the ranking is rejected as
// non-uniform if a statistic this large would happen less than once in a thousand times.
const alpha = 0.001

// rankTable runs draws (each with its own reproducible seed) over n entrants and counts how often
// the entrant at entry position i got rank r. rank decides the ranks of one draw.
func rankTable(n, draws int, rank func(d int, entrants []string) map[string]int, users func(d, i int) string) [][]int {
	table := make([][]int, n)
	for i := range table {
		table[i] = make([]int, n)
	}
	entrants := make([]string, n)
	for d := range draws {
		for i := range entrants {
			entrants[i] = Entrant("p1", users(d, i))
		}
		ranks := rank(d, entrants)
		for i, e := range entrants {
			table[i][ranks[e]-1]++
		}
	}
	return table
}

// independence is the chi-square statistic of an n×n table whose every cell expects draws/n,
// with (n-1)² degrees of freedom (each row and each column sums to draws).
func independence(table [][]int, draws int) (float64, int) {
	n := len(table)
	expected := float64(draws) / float64(n)
	x := 0.0
	for _, row := range table {
		for _, c := range row {
			d := float64(c) - expected
			x += d * d / expected
		}
	}
	return x, (n - 1) * (n - 1)
}

func realRanks(label string) func(d int, entrants []string) map[string]int {
	return func(d int, entrants []string) map[string]int {
		r, err := Ranks(testSeed(label, d), Digest(entrants), "", entrants)
		if err != nil {
			panic(err)
		}
		return r
	}
}

// The ranking is uniform: over many draws, the rank of the entrant at each entry position is
// uniform over 1..n (a chi-square test of independence between entry position and rank), both
// when the same shoppers enter every draw (only the seed changes) and when every draw has new
// shoppers. The first and the last to enter have the same chances.
func TestRankingIsUniform(t *testing.T) {
	t.Parallel()
	const n, draws = 10, 20000
	for _, c := range []struct {
		name  string
		users func(d, i int) string
	}{
		{"same shoppers every draw", func(_, i int) string { return fmt.Sprintf("user-%d", i) }},
		{"new shoppers every draw", func(d, i int) string { return fmt.Sprintf("d%d-user-%d", d, i) }},
	} {
		table := rankTable(n, draws, realRanks(c.name), c.users)
		x, dof := independence(table, draws)
		p := chiSquareP(x, dof)
		t.Logf("%s: chi-square %.1f, %d degrees of freedom, p = %.3f", c.name, x, dof, p)
		if p < alpha {
			t.Errorf("%s: the rank depends on the entry position (chi-square %.1f, p = %.2g < %g)", c.name, x, p, alpha)
		}
		// The winner alone: rank 1 over entry positions, n-1 degrees of freedom.
		w, exp := 0.0, float64(draws)/n
		for i := range n {
			d := float64(table[i][0]) - exp
			w += d * d / exp
		}
		if p := chiSquareP(w, n-1); p < alpha {
			t.Errorf("%s: the winner depends on the entry position (chi-square %.1f, p = %.2g)", c.name, w, p)
		}
	}
}

// The uniformity test can fail: small biases that a careless implementation could have are
// caught at the same significance and sample size.
func TestUniformityTestDetectsBias(t *testing.T) {
	t.Parallel()
	const n, draws = 10, 20000
	users := func(_, i int) string { return fmt.Sprintf("user-%d", i) }
	for _, c := range []struct {
		name string
		rank func(d int, entrants []string) map[string]int
	}{
		{"first come, first served", func(_ int, entrants []string) map[string]int {
			r := map[string]int{}
			for i, e := range entrants {
				r[e] = i + 1
			}
			return r
		}},
		{"seed ignored (ranked by entrant)", func(_ int, entrants []string) map[string]int {
			s := slices.Clone(entrants)
			slices.Sort(s)
			r := map[string]int{}
			for i, e := range s {
				r[e] = i + 1
			}
			return r
		}},
		{"early entrant wins a tie-break one draw in twenty", func(d int, entrants []string) map[string]int {
			r := realRanks("bias")(d, entrants)
			if d%20 == 0 && r[entrants[0]] != 1 {
				for e, v := range r { // swap the first entrant into rank 1
					if v == 1 {
						r[e] = r[entrants[0]]
					}
				}
				r[entrants[0]] = 1
			}
			return r
		}},
	} {
		x, dof := independence(rankTable(n, draws, c.rank, users), draws)
		if p := chiSquareP(x, dof); p >= alpha {
			t.Errorf("%s: not detected (chi-square %.1f, p = %.3f)", c.name, x, p)
		}
	}
}

func published(t *testing.T, n int, beacon *string) Record {
	t.Helper()
	outcomes := []string{"won", "waitlisted", "expired", "lost"}
	entries := make([]RecordEntry, n)
	for i := range entries {
		o := outcomes[i%len(outcomes)]
		entries[i] = RecordEntry{Entrant: Entrant("p1", fmt.Sprintf("user-%d", i)), VariantIDs: []string{"default"}, Quantity: 1, Outcome: &o}
	}
	rec, err := Publish("p1", time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), testSeed("record", n), beacon, entries)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestVerify(t *testing.T) {
	t.Parallel()
	beacon := "drand-round-4242"
	intp := func(i int) *int { return &i }
	strp := func(s string) *string { return &s }
	for _, c := range []struct {
		name   string
		n      int
		beacon *string
		change func(r *Record)
		ok     bool
		notRun bool
	}{
		{name: "as published", n: 100, ok: true},
		{name: "as published, with a beacon", n: 100, beacon: &beacon, ok: true},
		{name: "one entry", n: 1, ok: true},
		{name: "no entries", n: 0, ok: true},
		{name: "one rank changed", n: 100, change: func(r *Record) {
			a, b := &r.Entries[3], &r.Entries[7]
			a.Rank, b.Rank = b.Rank, a.Rank // still a permutation of 1..N
		}},
		{name: "one rank off by one", n: 100, change: func(r *Record) { *r.Entries[0].Rank = *r.Entries[0].Rank%100 + 1 }},
		{name: "one rank missing", n: 100, change: func(r *Record) { r.Entries[5].Rank = nil }},
		{name: "one entrant changed", n: 100, change: func(r *Record) { r.Entries[42].Entrant = Entrant("p1", "mallory") }},
		{name: "one entrant added", n: 100, change: func(r *Record) {
			r.Entries = append(r.Entries, RecordEntry{Entrant: Entrant("p1", "mallory"), Rank: intp(1), Quantity: 1})
		}},
		{name: "one entrant removed", n: 100, change: func(r *Record) { r.Entries = r.Entries[1:] }},
		{name: "one entrant twice", n: 100, change: func(r *Record) { r.Entries[1].Entrant = r.Entries[0].Entrant }},
		{name: "the seed changed", n: 100, change: func(r *Record) { r.Seed = strp(testSeed("other", 1).Hex()) }},
		{name: "the seed and the commitment changed together", n: 100, change: func(r *Record) {
			s := testSeed("other", 1)
			r.Seed, r.Commitment = strp(s.Hex()), s.Commitment()
		}},
		{name: "the beacon changed", n: 100, beacon: &beacon, change: func(r *Record) { r.Beacon = strp("drand-round-4243") }},
		{name: "the beacon dropped", n: 100, beacon: &beacon, change: func(r *Record) { r.Beacon = nil }},
		{name: "the seed in upper case", n: 10, change: func(r *Record) { r.Seed = strp(strings.ToUpper(*r.Seed)) }},
		{name: "the digest changed", n: 10, change: func(r *Record) { r.EntriesDigest = strp(Digest(nil)) }},
		{name: "before the draw", n: 10, notRun: true, change: func(r *Record) {
			r.Seed = nil
			for i := range r.Entries {
				r.Entries[i].Rank, r.Entries[i].Outcome = nil, nil
			}
		}},
		{name: "before the close", n: 10, notRun: true, change: func(r *Record) { r.Seed, r.EntriesDigest, r.Entries = nil, nil, nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := published(t, c.n, c.beacon)
			if c.change != nil {
				c.change(&rec)
			}
			err := Verify(rec)
			switch {
			case c.ok && err != nil:
				t.Fatalf("Verify: %v", err)
			case !c.ok && err == nil:
				t.Fatal("Verify accepted a changed record")
			case c.notRun && !errors.Is(err, ErrNotDrawn):
				t.Fatalf("Verify = %v, want ErrNotDrawn", err)
			case c.notRun && err.Error() != ErrNotDrawn.Error():
				t.Fatalf("Verify of an honest undrawn record found problems: %v", err)
			case !c.ok && !c.notRun && errors.Is(err, ErrNotDrawn):
				t.Fatalf("Verify = %v: a drawn record reported as undrawn", err)
			}
		})
	}
}
