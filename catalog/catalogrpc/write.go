package catalogrpc

import (
	"context"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// The calls of catalog.Writer.
const (
	mRename       = "rename"
	mRenameFolder = "rename_folder"
	mSetAttrs     = "set_attrs"
	mMakeFolder   = "make_folder"
	mRemoveFolder = "remove_folder"
	mSymlink      = "symlink"
	mRemoveLink   = "remove_link"
)

func init() {
	kinds = append(kinds, struct {
		name string
		err  error
	}{"notempty", catalog.ErrNotEmpty})
}

type writeArgs struct {
	Key    string        `json:"key"`
	To     string        `json:"to,omitempty"`
	Target string        `json:"target,omitempty"`
	Attrs  catalog.Attrs `json:"attrs"`
	// RemovalFrom is remove_folder's catalog.WithRemovalFrom: optional, an
	// older daemon ignores it (the folder's removal is then unknown, and
	// restore FOLDER/ takes all under it, as before).
	RemovalFrom *time.Time `json:"removal_from,omitempty"`
}

// handleWrite serves the catalog.Writer calls; ok is false for any other.
func (s *Server) handleWrite(ctx context.Context, m string, decode func(any) error) (res any, err error, ok bool) {
	switch m {
	case mRename, mRenameFolder, mSetAttrs, mMakeFolder, mRemoveFolder, mSymlink, mRemoveLink:
	default:
		return nil, nil, false
	}
	var a writeArgs
	if err := decode(&a); err != nil {
		return nil, err, true
	}
	changed := []string{a.Key}
	switch m {
	case mRename:
		res, err = s.cat.Rename(ctx, a.Key, a.To)
		changed = append(changed, a.To, catalog.RenameChange(a.Key, a.To))
	case mRenameFolder:
		err = s.cat.RenameFolder(ctx, a.Key, a.To)
		changed = append(changed, a.To, catalog.RenameChange(a.Key, a.To))
	case mSetAttrs:
		res, err = s.cat.SetAttrs(ctx, a.Key, a.Attrs)
	case mMakeFolder:
		err = s.cat.MakeFolder(ctx, a.Key)
	case mRemoveFolder:
		if a.RemovalFrom != nil {
			ctx = catalog.WithRemovalFrom(ctx, *a.RemovalFrom)
		}
		err = s.cat.RemoveFolder(ctx, a.Key)
	case mSymlink:
		err = s.cat.Symlink(ctx, a.Key, a.Target)
	case mRemoveLink:
		err = s.cat.RemoveLink(ctx, a.Key)
	}
	if err == nil {
		s.changed(changed...)
	}
	return res, err, true
}

func (c *Client) Rename(ctx context.Context, from, to string) (catalog.Version, error) {
	var v catalog.Version
	return v, c.call(ctx, mRename, writeArgs{Key: from, To: to}, &v)
}

func (c *Client) RenameFolder(ctx context.Context, from, to string) error {
	return c.call(ctx, mRenameFolder, writeArgs{Key: from, To: to}, nil)
}

func (c *Client) SetAttrs(ctx context.Context, key string, a catalog.Attrs) (catalog.Version, error) {
	var v catalog.Version
	return v, c.call(ctx, mSetAttrs, writeArgs{Key: key, Attrs: a}, &v)
}

func (c *Client) MakeFolder(ctx context.Context, key string) error {
	return c.call(ctx, mMakeFolder, writeArgs{Key: key}, nil)
}

func (c *Client) RemoveFolder(ctx context.Context, key string) error {
	return c.call(ctx, mRemoveFolder, writeArgs{Key: key, RemovalFrom: catalog.RemovalFromOf(ctx)}, nil)
}

func (c *Client) Symlink(ctx context.Context, key, target string) error {
	return c.call(ctx, mSymlink, writeArgs{Key: key, Target: target}, nil)
}

func (c *Client) RemoveLink(ctx context.Context, key string) error {
	return c.call(ctx, mRemoveLink, writeArgs{Key: key}, nil)
}
