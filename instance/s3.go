package instance

import (
	"fmt"
	"os"
)

// S3Settings say how to reach the S3 storage of an instance. Credentials
// are not here: they come from the standard AWS chain at every start.
type S3Settings struct {
	Endpoint  string `json:"endpoint,omitempty"` // empty for AWS
	Region    string `json:"region,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
}

// Update rewrites the settings of an existing instance.
func (d Dirs) Update(s Settings) error {
	p := d.settingsPath(s.Name)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("no instance named %q: %w", s.Name, err)
	}
	return writeJSON(p, s)
}
