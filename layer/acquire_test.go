package layer

import (
	"sync"
	"testing"
)

// TestAcquireConcurrently: builds in one process (goldsmith serve) that
// restore one layer at the same moment all get it; marking it used must
// not make any of them miss.
func TestAcquireConcurrently(t *testing.T) {
	c, _ := Open(t.TempDir(), 0, nil)
	k0, k1 := Key("", []byte("a")), Key("", []byte("b"))
	commit(t, c, k0, "", 4096).Release()
	commit(t, c, k1, k0, 4096).Release()
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := c.Acquire(k1)
				if err != nil {
					errs <- err
					return
				}
				h.Release()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: a concurrent acquire failed: %v", round, err)
		}
	}
}
