package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "2000", "-timeout", "20s"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	if !regexp.MustCompile(`(?m)^2000 messages passed in \S+ \(\d+ messages/s\), 0 wrong$`).MatchString(out) {
		t.Error("no summary line with 2000 messages and 0 wrong")
	}
	// Both address spaces map the same memory file, shared.
	maps := regexp.MustCompile(`(?m)^address space [01]: [0-9a-f]+-[0-9a-f]+ rw-s 00000000 .* /memfd:shm-ring$`)
	if got := len(maps.FindAllString(out, -1)); got != 2 {
		t.Errorf("%d shared memfd maps lines, want 2", got)
	}
}

// TestPass checks, independently of run's own check, that every message
// arrives once, in order and intact: more messages than ring slots, so the
// ring wraps many times and the producer waits on a full ring.
func TestPass(t *testing.T) {
	const n = 10 * nSlots
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got [][]byte
	err := pass(ctx, n, io.Discard, func(i int, msg []byte) {
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
}

func TestBadCount(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "-1"}, &stdout, &stderr); code != 2 {
		t.Errorf("run(-n -1) = %d, want 2", code)
	}
}

func TestMessageFitsSlot(t *testing.T) {
	for i := range 100000 {
		if m := message(i); len(m) > payloadMax {
			t.Fatalf("message(%d) is %d bytes, more than a slot's %d", i, len(m), payloadMax)
		}
	}
}
