// Package mountinfo reads /proc/self/mountinfo: what is mounted where, by
// which device, the mount over another after it.
package mountinfo

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mount is a line of /proc/self/mountinfo.
type Mount struct {
	ID      string // the mount's ID, as /proc/PID/fdinfo's mnt_id names it
	Dev     string // the file system's device, major:minor (st_dev)
	Root    string // the folder of the file system the mount shows (a bind mount's)
	Dir     string // where it is mounted
	Type    string // fuse.lamina, tmpfs, …
	Source  string // lamina:NAME for a lamina mount
	Options string // the super block's options (a FUSE mount's user_id=…)
}

// Read returns the mounts in mountinfo's order (a mount over another comes
// after it); nil if it cannot be read.
func Read() []Mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER-OPTIONS
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		m := Mount{ID: fs[0], Dev: fs[2], Root: Unescape(fs[3]), Dir: Unescape(fs[4])}
		if i := slices.Index(fs, "-"); i >= 5 {
			if i+1 < len(fs) {
				m.Type = fs[i+1]
			}
			if i+2 < len(fs) {
				m.Source = Unescape(fs[i+2])
			}
			if i+3 < len(fs) {
				m.Options = fs[i+3]
			}
		}
		out = append(out, m)
	}
	return out
}

// Unescape undoes mountinfo's octal escapes ("\040" is a space).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
