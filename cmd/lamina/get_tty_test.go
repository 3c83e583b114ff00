package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLooksBinary: what get -o - refuses to write to a terminal.
func TestLooksBinary(t *testing.T) {
	long := strings.Repeat("x", sniffLen-1)
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"gene,count\nCD4,1\n", false},
		{"naïve T cell\tß\n", false},
		{"PAR1\x00\x00", true},
		{"\x89HDF\r\n\x1a\n", true},  // invalid UTF-8
		{long + "é and more", false}, // a character cut at the sample's end
		{long + "\xff and more", true},
		{long + "xx\x00", false}, // past the sample
	} {
		if got := looksBinary([]byte(tc.in)); got != tc.want {
			t.Errorf("looksBinary(%.20q…): %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestGetBinaryToTerminal: get -o - refuses to write binary to a terminal
// (exit 2, nothing written) unless --force, and writes text there.
func TestGetBinaryToTerminal(t *testing.T) {
	e := newEnv(t)
	e.init()
	// More than sniffLen, refused; a small one, written with --force (a
	// terminal holds a few KiB unread).
	bin := bytes.Repeat([]byte("PAR1\x00\x01\x02\xff"), 4096)
	e.ok("save", e.write("t.parquet", bin), "--key", "t.parquet")
	e.ok("save", e.write("s.parquet", bin[:64]), "--key", "s.parquet")
	e.ok("save", e.write("t.csv", []byte("gene,count\nCD4,1\n")), "--key", "t.csv")
	ptm, pts := openPty(t)
	// What the terminal gets, read as it comes (until the test closes it).
	var mu sync.Mutex
	var screen []byte
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := ptm.Read(buf)
			mu.Lock()
			screen = append(screen, buf[:n]...)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	var stderr bytes.Buffer
	err := Main([]string{"lamina", "get", "t.parquet", "-o", "-"}, pts, &stderr)
	if codeOf(err) != 2 || !strings.Contains(err.Error(), "refusing to write binary to a terminal: use -o FILE or pipe it") {
		t.Fatalf("get of binary to a terminal: %v (exit %d)", err, codeOf(err))
	}
	if err := Main([]string{"lamina", "get", "t.csv", "-o", "-"}, pts, &stderr); err != nil {
		t.Fatalf("get of text to a terminal: %v", err)
	}
	if err := Main([]string{"lamina", "get", "s.parquet", "-o", "-", "--force"}, pts, &stderr); err != nil {
		t.Fatalf("get --force of binary to a terminal: %v", err)
	}
	// The terminal shows the text, then the forced binary, and nothing of
	// the refused one before them (it shows "\n" as "\r\n").
	want := strings.ReplaceAll("gene,count\nCD4,1\n"+string(bin[:64]), "\n", "\r\n")
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got = string(screen)
		mu.Unlock()
		if len(got) >= len(want) {
			break
		}
	}
	if got != want {
		t.Fatalf("the terminal got %q, want %q", got, want)
	}
	// A pipe or a file gets the bytes as ever.
	if out := e.ok("get", "t.parquet", "-o", "-"); out != string(bin) {
		t.Fatalf("get -o - to a buffer: %d bytes", len(out))
	}
}
