package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "2000", "-timeout", "20s"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	// One summary line per way of waiting, in order; spinning never
	// sleeps nor wakes.
	summary := regexp.MustCompile(`(?m)^(spin|futex): +2000 messages passed in \S+ \((\d+) messages/s\), 0 wrong; (\d+) sleeps, (\d+) wakes$`)
	lines := summary.FindAllStringSubmatch(out, -1)
	if len(lines) != 2 || lines[0][1] != "spin" || lines[1][1] != "futex" {
		t.Fatalf("summary lines %q, want one for spin then one for futex, each with 2000 messages and 0 wrong", lines)
	}
	if lines[0][3] != "0" || lines[0][4] != "0" {
		t.Errorf("spinning slept or woke: %q", lines[0][0])
	}
	for _, l := range lines {
		if l[2] == "0" {
			t.Errorf("0 messages/s: %q", l[0])
		}
	}
	// Both address spaces map the same memory file, shared.
	maps := regexp.MustCompile(`(?m)^address space [01]: [0-9a-f]+-[0-9a-f]+ rw-s 00000000 .* /memfd:shm-ring$`)
	if got := len(maps.FindAllString(out, -1)); got != 2 {
		t.Errorf("%d shared memfd maps lines, want 2", got)
	}
}

func TestRunOneWay(t *testing.T) {
	for _, way := range []string{"spin", "futex"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-n", "100", "-wait", way}, &stdout, &stderr); code != 0 {
			t.Fatalf("run(-wait %s) = %d, stderr:\n%s", way, code, stderr.String())
		}
		if got := regexp.MustCompile(`(?m)^(\w+): +100 messages .*, 0 wrong;`).FindAllStringSubmatch(stdout.String(), -1); len(got) != 1 || got[0][1] != way {
			t.Errorf("-wait %s: summary lines %q", way, got)
		}
	}
}

// TestPass checks, independently of run's own check, that every message
// arrives once, in order and intact, whichever way the sides wait: more
// messages than ring slots, so the ring wraps many times and the producer
// waits on a full ring.
func TestPass(t *testing.T) {
	for _, mode := range []waitMode{spin, futex} {
		t.Run(mode.String(), func(t *testing.T) { testPass(t, mode) })
	}
}

func testPass(t *testing.T, mode waitMode) {
	const n = 10 * nSlots
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got [][]byte
	st, err := pass(ctx, mode, n, io.Discard, func(i int, msg []byte) {
		if i != len(got) {
			t.Errorf("message %d delivered as number %d", len(got), i)
		}
		got = append(got, bytes.Clone(msg)) // msg is the consumer's buffer
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, msg := range got {
		if want := message(i); !bytes.Equal(msg, want) {
			t.Errorf("message %d = %q, want %q", i, msg, want)
		}
	}
	// Every wake woke a sleeper; spinning does neither.
	sleeps, wakes := st.sleeps.Load(), st.wakes.Load()
	if wakes > sleeps || (mode == spin && sleeps+wakes != 0) {
		t.Errorf("%s: %d sleeps, %d wakes", mode, sleeps, wakes)
	}
}

// TestFutexWaitSleeps shows a futex-mode wait asleep in FutexWait (a
// FutexWake from the other address space finds it), not spinning, and
// that a publish from the other space ends it and clears the flag.
func TestFutexWaitSleeps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fd, err := unix.MemfdCreate("shm-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(fd), "shm-test")
	defer memfd.Close()
	if err := memfd.Truncate(ringSize); err != nil {
		t.Fatal(err)
	}
	var sides [2]side
	var rings [2]hostarch.Addr
	st := &stats{}
	for i := range sides {
		as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		defer as.Close()
		if rings[i], err = as.Mmap(addrspace.MmapOpts{Length: ringSize, Perms: hostarch.ReadWrite, File: memfd}); err != nil {
			t.Fatal(err)
		}
		sides[i] = side{as, futex, st}
	}
	done := make(chan error, 1)
	go func() {
		done <- sides[1].waitUntil(ctx, rings[1]+headOff, func(head uint32) bool { return head != 0 })
	}()
	// Wake it (the word unchanged) until a wake finds it asleep: it goes
	// back to sleep, since head is still 0.
	for {
		n, err := sides[0].as.FutexWake(rings[0]+headOff, 1, ^uint32(0))
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("waitUntil returned %v with head 0", err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := sides[0].publish(ctx, rings[0]+headOff, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sleeps := st.sleeps.Load(); sleeps < 1 {
		t.Errorf("%d sleeps", sleeps)
	}
	for i, off := range []hostarch.Addr{headOff, headOff + flagOff} {
		v, err := sides[1].as.LoadUint32(ctx, rings[1]+off, usermem.IOOpts{})
		if want := []uint32{1, 0}[i]; err != nil || v != want {
			t.Errorf("word at +%d = %d, %v; want %d", off, v, err, want)
		}
	}
}

// TestFutexWaitCancelled: a futex-mode wait nobody wakes ends when its
// context does.
func TestFutexWaitCancelled(t *testing.T) {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ring, err := as.Mmap(addrspace.MmapOpts{Length: ringSize, Perms: hostarch.ReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	st := &stats{}
	err = side{as, futex, st}.waitUntil(ctx, ring+headOff, func(head uint32) bool { return head != 0 })
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") {
		t.Errorf("waitUntil = %v, want gave up waiting", err)
	}
	if st.sleeps.Load() < 1 {
		t.Error("never slept")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "-1"}, {"-wait", "sleep"}, {"-nope"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
			t.Errorf("run(%q) = %d, stdout %q; want 2 and nothing", args, code, stdout.String())
		}
	}
}

func TestMessageFitsSlot(t *testing.T) {
	for i := range 100000 {
		if m := message(i); len(m) > payloadMax {
			t.Fatalf("message(%d) is %d bytes, more than a slot's %d", i, len(m), payloadMax)
		}
	}
}
