package addrspace

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
)

// TestRelayConcurrentWrites: writers that take no lock — CopyOut, and
// direct stores through a Translation's Mem recovered with
// debug.SetPanicOnFault and ResolveFault — keep storing distinct values
// into a private mapping while another goroutine makes the page table
// re-lay it (a Clone makes it copy-on-write, then writes to every other
// 16-page window fragment its copies beyond the bound). No store may be
// lost: each writer reads back, before every store, the value it stored
// there last, and at the end every slot holds its writer's last value.
//
// A re-lay copies the mapping into a fresh run and then maps the run: a
// store that reaches the old backing in between is lost unless the old
// backing stops being writable through the views before the copy.
func TestRelayConcurrentWrites(t *testing.T) {
	const (
		winPages = 16
		windows  = 80 // 1,280 pages: relayBound is 66 entries
		hot      = 2 * winPages
		copiers  = 2
		directs  = 1
		writers  = copiers + directs
		rounds   = 12
	)
	as := newAS(t, 1<<30)
	const base = hostarch.Addr(0x4000000) // window-aligned
	length := uint64(windows * winPages * pg)
	mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: length, Perms: hostarch.ReadWrite, Private: true})
	if n, err := as.CopyOut(ctx, base, make([]byte, length), noOpt); n != int(length) || err != nil {
		t.Fatalf("CopyOut = %d, %v", n, err)
	}
	slot := func(w, p int) hostarch.Addr { return base + hostarch.Addr(p*pg+8*w) }
	read := func(a hostarch.Addr) (uint64, error) {
		var b [8]byte
		if _, err := as.CopyIn(ctx, a, b[:], noOpt); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b[:]), nil
	}

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		lost   [writers]atomic.Int64
		stores atomic.Int64
		errMu  sync.Mutex
		errs   []string
	)
	report := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	last := make([][hot]uint64, writers)

	// store writes v at a as writer w does: CopyOut, or a direct store
	// through a cached translation, refilled when the generation changes
	// and retried after ResolveFault.
	var tlb [writers]Translation
	store := func(w int, a hostarch.Addr, v uint64) error {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if w < copiers {
			_, err := as.CopyOut(ctx, a, b[:], noOpt)
			return err
		}
		for tries := 0; ; tries++ {
			tr := &tlb[w]
			if tr.Mem == nil || tr.Gen != as.Generation() || !tr.Perms.Write || a < tr.Range.Start || a+8 > tr.Range.End {
				nt, err := as.Translate(a, hostarch.Write)
				if err != nil {
					return err
				}
				*tr = nt
			}
			mem := tr.Mem[a-tr.Range.Start:]
			if _, faulted := direct(func() { binary.LittleEndian.PutUint64(mem, v) }); !faulted {
				return nil
			}
			if err := as.ResolveFault(a, hostarch.Write); err != nil {
				return err
			}
			if tries > 1000 {
				return fmt.Errorf("store at %#x: still faulting after %d resolutions", a, tries)
			}
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := uint64(w+1) << 48; !stop.Load(); v++ {
				for p := range hot {
					a := slot(w, p)
					got, err := read(a)
					if err != nil {
						report("writer %d: read %#x: %v", w, a, err)
						return
					}
					if got != last[w][p] {
						lost[w].Add(1)
						report("writer %d: slot %#x holds %#x, last stored %#x", w, a, got, last[w][p])
					}
					if err := store(w, a, v); err != nil {
						report("writer %d: store %#x: %v", w, a, err)
						return
					}
					last[w][p] = v
					stores.Add(1)
				}
			}
		}()
	}

	relaid := 0
	lostAny := func() bool {
		for w := range lost {
			if lost[w].Load() != 0 {
				return true
			}
		}
		return false
	}
	for r := 0; r < rounds && !lostAny(); r++ {
		c, err := as.Clone()
		if err != nil {
			t.Fatal(err)
		}
		// Break copy-on-write in windows 3, 5, ..., 79: the copies and
		// the shared windows between them alternate until the re-lay.
		for i := 3; i < windows; i += 2 {
			a := base + hostarch.Addr(i*winPages*pg+pg-8)
			if n, err := as.CopyOut(ctx, a, []byte{byte(r + 1)}, noOpt); n != 1 || err != nil {
				t.Fatalf("round %d: CopyOut(%#x) = %d, %v", r, a, n, err)
			}
		}
		as.mu.Lock()
		if as.pt.HostMappings() < windows/4 {
			relaid++
		}
		as.mu.Unlock()
		c.Close()
		time.Sleep(time.Millisecond) // the writers run on this backing a while
	}
	stop.Store(true)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if lostAny() {
		var by [writers]int64
		for w := range lost {
			by[w] = lost[w].Load()
		}
		t.Fatalf("stores lost per writer (CopyOut, CopyOut, direct): %v (%d made, %d re-lays)", by, stores.Load(), relaid)
	}
	if relaid == 0 {
		t.Fatal("the mapping was never re-laid")
	}
	for w := range writers {
		for p := range hot {
			if got, err := read(slot(w, p)); err != nil || got != last[w][p] {
				t.Fatalf("writer %d's slot %#x holds %#x (%v), last stored %#x", w, slot(w, p), got, err, last[w][p])
			}
		}
	}
	t.Logf("%d stores, %d re-lays", stores.Load(), relaid)
}
