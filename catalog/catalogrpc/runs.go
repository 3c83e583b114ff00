package catalogrpc

import (
	"context"
	"encoding/json"

	"github.com/lamina-bio/lamina/catalog"
)

// The calls of catalog.Runs.
const (
	mSaveTransform = "save_transform"
	mStartRun      = "start_run"
	mFinishRun     = "finish_run"
	mAddInputs     = "add_inputs"
	mRunRecord     = "run_record"
	mListRuns      = "list_runs"
	mUsedBy        = "used_by"
	mCreditOutputs = "credit_outputs"
	mReruns        = "reruns"
)

type runArgs struct {
	UID  string         `json:"uid,omitempty"`
	End  catalog.RunEnd `json:"end"`
	UIDs []string       `json:"uids,omitempty"`
}

// handleRuns serves the catalog.Runs calls; ok is false for any other.
func (s *Server) handleRuns(ctx context.Context, m string, raw json.RawMessage) (res any, err error, ok bool) {
	decode := func(v any) error {
		if len(raw) == 0 {
			return nil
		}
		return json.Unmarshal(raw, v)
	}
	var a runArgs
	switch m {
	case mSaveTransform:
		var t catalog.Transform
		if err := decode(&t); err != nil {
			return nil, err, true
		}
		res, err = s.cat.SaveTransform(ctx, t)
	case mStartRun:
		var r catalog.Run
		if err := decode(&r); err != nil {
			return nil, err, true
		}
		res, err = s.cat.StartRun(ctx, r)
	case mListRuns:
		var q catalog.RunQuery
		if err := decode(&q); err != nil {
			return nil, err, true
		}
		res, err = s.cat.ListRuns(ctx, q)
	case mFinishRun, mAddInputs, mRunRecord, mUsedBy, mCreditOutputs, mReruns:
		if err := decode(&a); err != nil {
			return nil, err, true
		}
		switch m {
		case mFinishRun:
			res, err = s.cat.FinishRun(ctx, a.UID, a.End)
		case mAddInputs:
			err = s.cat.AddInputs(ctx, a.UID, a.UIDs)
		case mCreditOutputs:
			var vs []catalog.Version
			vs, err = s.cat.CreditOutputs(ctx, a.UID, a.UIDs)
			for _, v := range vs {
				s.changed(v.Key) // the mount shows the run in its sidecar
			}
			res = vs
		case mRunRecord:
			res, err = s.cat.RunRecord(ctx, a.UID)
		case mReruns:
			res, err = s.cat.Reruns(ctx, a.UID)
		default:
			res, err = s.cat.UsedBy(ctx, a.UID)
		}
	default:
		return nil, nil, false
	}
	return res, err, true
}

func (c *Client) SaveTransform(ctx context.Context, t catalog.Transform) (catalog.Transform, error) {
	var out catalog.Transform
	return out, c.call(ctx, mSaveTransform, t, &out)
}

func (c *Client) StartRun(ctx context.Context, r catalog.Run) (catalog.Run, error) {
	var out catalog.Run
	return out, c.call(ctx, mStartRun, r, &out)
}

func (c *Client) FinishRun(ctx context.Context, uid string, e catalog.RunEnd) (catalog.Run, error) {
	var out catalog.Run
	return out, c.call(ctx, mFinishRun, runArgs{UID: uid, End: e}, &out)
}

func (c *Client) AddInputs(ctx context.Context, run string, uids []string) error {
	return c.call(ctx, mAddInputs, runArgs{UID: run, UIDs: uids}, nil)
}

func (c *Client) CreditOutputs(ctx context.Context, run string, uids []string) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mCreditOutputs, runArgs{UID: run, UIDs: uids}, &out)
}

func (c *Client) RunRecord(ctx context.Context, uid string) (catalog.RunRecord, error) {
	var out catalog.RunRecord
	return out, c.call(ctx, mRunRecord, runArgs{UID: uid}, &out)
}

func (c *Client) ListRuns(ctx context.Context, q catalog.RunQuery) ([]catalog.Run, error) {
	var out []catalog.Run
	return out, c.call(ctx, mListRuns, q, &out)
}

func (c *Client) UsedBy(ctx context.Context, uid string) ([]string, error) {
	var out []string
	return out, c.call(ctx, mUsedBy, runArgs{UID: uid}, &out)
}

func (c *Client) Reruns(ctx context.Context, uid string) ([]string, error) {
	var out []string
	return out, c.call(ctx, mReruns, runArgs{UID: uid}, &out)
}
