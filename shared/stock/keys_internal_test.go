package stock

import (
	"slices"
	"testing"
)

// TestProductKeysOfIsKeysFor: the cached keys a reserve sends are the ones KeysFor, QueueKeys
// and IdemKey build, on the first call and from the cache.
func TestProductKeysOfIsKeysFor(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"p1", "", "a:b", "{x}", "ünï"} {
		want := append(KeysFor(id).list(), QueueKeys(id)...)
		for range 2 {
			pk := productKeysOf(id)
			if !slices.Equal(pk.list, want) {
				t.Errorf("%q: keys %q, want %q", id, pk.list, want)
			}
			if pk.noIdem != IdemKey(id, "u", "") {
				t.Errorf("%q: no-idem key %q, want %q", id, pk.noIdem, IdemKey(id, "u", ""))
			}
		}
	}
}
