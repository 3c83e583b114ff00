package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestLimitMemoryFollowsLiveHeap: with more live than the base limit, the
// limit rises above it (a fixed one would make the GC run back to back).
func TestLimitMemoryFollowsLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { limitMemory(ctx, 16<<20); close(done) }()
	defer func() { cancel(); <-done }()
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = byte(i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		if lim := debug.SetMemoryLimit(-1); lim >= 64<<20 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("limit %d MiB with 64 MiB live; want it raised", lim>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runtime.KeepAlive(held)
}
