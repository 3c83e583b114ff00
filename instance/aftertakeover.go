package instance

import (
	"path/filepath"
	"slices"
	"time"
)

// AfterTakeOver names the versions a mount of this instance committed on
// S3 after another instance took the storage over and before the mount
// saw it (the owner is read every ownerCheckEvery there, not after each
// close): they are in this instance's catalog only, and the new owner's
// gc deletes their packs once its grace is past. It is kept in a file of
// the data folder until the user says it is dealt with
// (ForgetAfterTakeOver), as LostUploads is.
type AfterTakeOver struct {
	Owner    string    `json:"owner"`    // the instance that took the storage over
	Since    time.Time `json:"since"`    // from when the versions count: the claim's time, or the last check that still saw this instance
	Versions []string  `json:"versions"` // KEY@vN
}

func (s Settings) afterTakeOverPath() string {
	return filepath.Join(s.dataHome(), "after-take-over.json")
}

// AfterTakeOver reads the record of versions committed after a take-over;
// nil when there is none.
func (s Settings) AfterTakeOver() (*AfterTakeOver, error) {
	return readJSONRecord[AfterTakeOver](s.afterTakeOverPath())
}

// RecordAfterTakeOver adds versions to the record of versions committed
// after owner took the storage over.
func (s Settings) RecordAfterTakeOver(owner string, since time.Time, versions []string) error {
	a, err := s.AfterTakeOver()
	if err != nil || a == nil {
		a = &AfterTakeOver{}
	}
	a.Owner = owner
	if a.Since.IsZero() || since.Before(a.Since) {
		a.Since = since.UTC()
	}
	for _, v := range versions {
		if !slices.Contains(a.Versions, v) {
			a.Versions = append(a.Versions, v)
		}
	}
	slices.Sort(a.Versions)
	return writeRecord(s.dataHome(), s.afterTakeOverPath(), a)
}

// ForgetAfterTakeOver removes the record of versions committed after a
// take-over (the user saved them into the new owner, or gave them up).
func (s Settings) ForgetAfterTakeOver() error { return removeRecord(s.afterTakeOverPath()) }
