package catalogrpc

import (
	"context"
	"encoding/json"

	"github.com/lamina-bio/lamina/catalog"
)

// The calls of catalog.Annotator.
const (
	mCreateFeature  = "create_feature"
	mFeatures       = "features"
	mCreateLabel    = "create_label"
	mLabels         = "labels"
	mCreateSchema   = "create_schema"
	mSchemas        = "schemas"
	mAnnotate       = "annotate"
	mAnnotations    = "annotations"
	mUnannotate     = "unannotate" // protocol 5
	mFind           = "find"
	mSearch         = "search"
	mSaveCollection = "save_collection"
	mCollections    = "collections"
	mCollection     = "collection"
	mCollectionVers = "collection_versions"
	mDeleteFeature  = "delete_feature"    // protocol 8
	mDeleteLabel    = "delete_label"      // protocol 8
	mDeleteSchema   = "delete_schema"     // protocol 8
	mDeleteColl     = "delete_collection" // protocol 11
)

func init() {
	kinds = append(kinds, struct {
		name string
		err  error
	}{"invalid", catalog.ErrInvalid})
}

type annotateArgs struct {
	UID    string              `json:"uid"`
	Add    catalog.Annotations `json:"add"`
	Remove catalog.Annotations `json:"remove,omitzero"`
	Query  string              `json:"query,omitempty"`
	Limit  int                 `json:"limit,omitempty"`
	Name   string              `json:"name,omitempty"`
	N      int                 `json:"n,omitempty"`
}

// handleAnnotate serves the catalog.Annotator calls; ok is false for any
// other.
func (s *Server) handleAnnotate(ctx context.Context, m string, raw json.RawMessage) (res any, err error, ok bool) {
	decode := func(v any) error {
		if len(raw) == 0 {
			return nil
		}
		return json.Unmarshal(raw, v)
	}
	var a annotateArgs
	switch m {
	case mCreateFeature:
		var f catalog.Feature
		if err := decode(&f); err != nil {
			return nil, err, true
		}
		res, err = s.cat.CreateFeature(ctx, f)
	case mFeatures:
		res, err = s.cat.Features(ctx)
	case mCreateLabel:
		var l catalog.Label
		if err := decode(&l); err != nil {
			return nil, err, true
		}
		res, err = s.cat.CreateLabel(ctx, l)
	case mLabels:
		res, err = s.cat.Labels(ctx)
	case mCreateSchema:
		var sc catalog.Schema
		if err := decode(&sc); err != nil {
			return nil, err, true
		}
		res, err = s.cat.CreateSchema(ctx, sc)
	case mSchemas:
		res, err = s.cat.Schemas(ctx)
	case mDeleteFeature, mDeleteLabel, mDeleteSchema, mDeleteColl:
		if err := decode(&a); err != nil {
			return nil, err, true
		}
		switch m {
		case mDeleteColl:
			res, err = s.cat.DeleteCollection(ctx, a.Name)
			if err == nil {
				s.changed(catalog.CollectionChange(a.Name))
			}
		case mDeleteFeature:
			res, err = s.cat.DeleteFeature(ctx, a.Name)
		case mDeleteLabel:
			res, err = s.cat.DeleteLabel(ctx, a.Name)
		default:
			res, err = s.cat.DeleteSchema(ctx, a.Name)
		}
	case mAnnotate, mUnannotate, mAnnotations, mSearch, mCollection, mCollectionVers:
		if err := decode(&a); err != nil {
			return nil, err, true
		}
		switch m {
		case mAnnotate:
			res, err = s.cat.Annotate(ctx, a.UID, a.Add)
			if err == nil {
				s.annotated(ctx, a.UID)
			}
		case mUnannotate:
			res, err = s.cat.Unannotate(ctx, a.UID, a.Remove)
			if err == nil {
				s.annotated(ctx, a.UID)
			}
		case mAnnotations:
			res, err = s.cat.Annotations(ctx, a.UID)
		case mSearch:
			res, err = s.cat.Search(ctx, a.Query, a.Limit)
		case mCollectionVers:
			res, err = s.cat.CollectionVersions(ctx, a.Name)
		default:
			res, err = s.cat.Collection(ctx, a.Name, a.N)
		}
	case mFind:
		var f catalog.Filter
		if err := decode(&f); err != nil {
			return nil, err, true
		}
		res, err = s.cat.Find(ctx, f)
	case mSaveCollection:
		var nc catalog.NewCollection
		if err := decode(&nc); err != nil {
			return nil, err, true
		}
		col, serr := s.cat.SaveCollection(ctx, nc)
		if serr == nil && !col.Unchanged {
			s.changed(catalog.CollectionChange(col.Name))
		}
		res, err = col, serr
	case mCollections:
		res, err = s.cat.Collections(ctx)
	default:
		return nil, nil, false
	}
	return res, err, true
}

// annotated passes the key of the version uid on as changed: its sidecars
// now show other annotations.
func (s *Server) annotated(ctx context.Context, uid string) {
	if v, err := s.cat.ByUID(ctx, uid); err == nil {
		s.changed(v.Key)
	}
}

func (c *Client) CreateFeature(ctx context.Context, f catalog.Feature) (catalog.Feature, error) {
	var out catalog.Feature
	if err := catalog.CheckName("feature", f.Name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mCreateFeature, f, &out)
}

func (c *Client) Features(ctx context.Context) ([]catalog.Feature, error) {
	var out []catalog.Feature
	return out, c.call(ctx, mFeatures, nil, &out)
}

func (c *Client) CreateLabel(ctx context.Context, l catalog.Label) (catalog.Label, error) {
	var out catalog.Label
	if err := utf8Names("label", l.Name, l.Parent); err != nil {
		return out, err
	}
	return out, c.call(ctx, mCreateLabel, l, &out)
}

func (c *Client) Labels(ctx context.Context) ([]catalog.Label, error) {
	var out []catalog.Label
	return out, c.call(ctx, mLabels, nil, &out)
}

func (c *Client) CreateSchema(ctx context.Context, s catalog.Schema) (catalog.Schema, error) {
	var out catalog.Schema
	if err := utf8Names("schema", s.Name); err != nil {
		return out, err
	}
	for _, f := range s.Features {
		if err := utf8Names("feature", f.Feature); err != nil {
			return out, err
		}
	}
	return out, c.call(ctx, mCreateSchema, s, &out)
}

func (c *Client) Schemas(ctx context.Context) ([]catalog.Schema, error) {
	var out []catalog.Schema
	return out, c.call(ctx, mSchemas, nil, &out)
}

// DeleteFeature, DeleteLabel and DeleteSchema are protocol 8: an older
// server answers errors.ErrUnsupported.
func (c *Client) DeleteFeature(ctx context.Context, name string) (catalog.Feature, error) {
	var out catalog.Feature
	if err := utf8Names("feature", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mDeleteFeature, annotateArgs{Name: name}, &out)
}

func (c *Client) DeleteLabel(ctx context.Context, name string) (catalog.Label, error) {
	var out catalog.Label
	if err := utf8Names("label", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mDeleteLabel, annotateArgs{Name: name}, &out)
}

func (c *Client) DeleteSchema(ctx context.Context, name string) (catalog.Schema, error) {
	var out catalog.Schema
	if err := utf8Names("schema", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mDeleteSchema, annotateArgs{Name: name}, &out)
}

func (c *Client) Annotate(ctx context.Context, uid string, add catalog.Annotations) (catalog.Annotations, error) {
	var out catalog.Annotations
	if err := catalog.CheckAnnotationsText(add); err != nil {
		return out, err
	}
	return out, c.call(ctx, mAnnotate, annotateArgs{UID: uid, Add: add}, &out)
}

func (c *Client) Unannotate(ctx context.Context, uid string, remove catalog.Annotations) (catalog.Annotations, error) {
	var out catalog.Annotations
	if err := catalog.CheckAnnotationsText(remove); err != nil {
		return out, err
	}
	return out, c.call(ctx, mUnannotate, annotateArgs{UID: uid, Remove: remove}, &out)
}

func (c *Client) Annotations(ctx context.Context, uid string) (catalog.Annotations, error) {
	var out catalog.Annotations
	return out, c.call(ctx, mAnnotations, annotateArgs{UID: uid}, &out)
}

func (c *Client) Find(ctx context.Context, f catalog.Filter) ([]catalog.Version, error) {
	var out []catalog.Version
	if err := catalog.CheckFilterText(f); err != nil {
		return out, err
	}
	return out, c.call(ctx, mFind, f, &out)
}

func (c *Client) Search(ctx context.Context, query string, limit int) ([]catalog.Hit, error) {
	var out []catalog.Hit
	return out, c.call(ctx, mSearch, annotateArgs{Query: query, Limit: limit}, &out)
}

func (c *Client) SaveCollection(ctx context.Context, nc catalog.NewCollection) (catalog.Collection, error) {
	var out catalog.Collection
	if err := utf8Names("collection", nc.Name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mSaveCollection, nc, &out)
}

func (c *Client) Collections(ctx context.Context) ([]catalog.Collection, error) {
	var out []catalog.Collection
	return out, c.call(ctx, mCollections, nil, &out)
}

func (c *Client) Collection(ctx context.Context, name string, n int) (catalog.Collection, error) {
	var out catalog.Collection
	if err := utf8Names("collection", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mCollection, annotateArgs{Name: name, N: n}, &out)
}

func (c *Client) CollectionVersions(ctx context.Context, name string) ([]catalog.Collection, error) {
	var out []catalog.Collection
	if err := utf8Names("collection", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mCollectionVers, annotateArgs{Name: name}, &out)
}

// DeleteCollection is protocol 11: an older server answers
// errors.ErrUnsupported.
func (c *Client) DeleteCollection(ctx context.Context, name string) ([]catalog.Collection, error) {
	var out []catalog.Collection
	if err := utf8Names("collection", name); err != nil {
		return out, err
	}
	return out, c.call(ctx, mDeleteColl, annotateArgs{Name: name}, &out)
}

// utf8Names refuses names that are not valid UTF-8 before they are sent:
// JSON would carry them as U+FFFD, and the server would take them for
// other names (create a label "x\uFFFD" for "x\xff").
func utf8Names(kind string, names ...string) error {
	for _, n := range names {
		if err := catalog.CheckLookup(kind, n); err != nil {
			return err
		}
	}
	return nil
}

var _ catalog.Annotator = (*Client)(nil)
