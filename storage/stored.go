package storage

import "context"

// Storer is a backend that may keep a write locally and send it to the
// storage later (cache.Uploads, and the decorators above it). Some objects
// are only correct once other machines can read them (gc's marks, the
// instance's claim): those are written and read with PutStored and
// GetStored.
type Storer interface {
	// PutStored stores data under name in the storage itself and returns
	// its error: the object is never staged locally to be sent later.
	PutStored(ctx context.Context, name string, data []byte) error
	// GetStored reads name from the storage itself, never from a local
	// copy (a staged write, a cache).
	GetStored(ctx context.Context, name string) ([]byte, error)
}

// PutStored writes data under name to the storage itself: through
// b.PutStored when b is a Storer, else b.Put (a backend that stages
// nothing). Either way the caller still calls Sync for durability.
func PutStored(ctx context.Context, b Backend, name string, data []byte) error {
	if s, ok := b.(Storer); ok {
		return s.PutStored(ctx, name, data)
	}
	return b.Put(ctx, name, data)
}

// GetStored reads name from the storage itself: through b.GetStored when b
// is a Storer, else b.Get.
func GetStored(ctx context.Context, b Backend, name string) ([]byte, error) {
	if s, ok := b.(Storer); ok {
		return s.GetStored(ctx, name)
	}
	return b.Get(ctx, name)
}
