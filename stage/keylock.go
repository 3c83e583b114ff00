package stage

import (
	"context"
	"sync"
)

// keyLocks orders the catalog saves of one key made by this Stage: a
// retried close checks what the key holds and saves after it (retryOne),
// and a close of the key committing in between would end up beneath the
// older, retried bytes.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (l *keyLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]*keyLock{}
	}
	k := l.held[key]
	if k == nil {
		k = &keyLock{}
		l.held[key] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}
}

type heldKey struct{}

// withKeyHeld marks ctx as holding key's lock, so that a save of key
// under it does not take the lock again.
func withKeyHeld(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, heldKey{}, key)
}

// lockSave locks key for a save in ctx, unless ctx holds it already.
func (l *keyLocks) lockSave(ctx context.Context, key string) (unlock func()) {
	if held, _ := ctx.Value(heldKey{}).(string); held == key {
		return func() {}
	}
	return l.lock(key)
}
