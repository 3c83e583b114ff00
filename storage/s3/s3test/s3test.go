// Package s3test gives tests an S3 server on 127.0.0.1: a real one
// (versitygw) for the conformance suite and anything that must behave like
// S3, and an in-process gofakes3 for fast unit tests. Every call hands out a
// fresh bucket.
//
// The real server is found, in this order: LAMINA_S3_ENDPOINT (with
// LAMINA_S3_ACCESS_KEY and LAMINA_S3_SECRET_KEY; .ci/run starts versitygw and
// sets them), else a versitygw binary (LAMINA_VERSITYGW, PATH, or
// ~/.cache/lamina-ci/bin) that the test process starts once on a free port
// with a temporary posix folder. Without either, tests fail, or skip when
// LAMINA_ALLOW_SKIP=1.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	s3b "github.com/lamina-bio/lamina/storage/s3"
)

// Server is an S3 endpoint with the credentials that open it.
type Server struct {
	Endpoint, AccessKey, SecretKey string
}

// Config returns a backend configuration for bucket on the server.
func (s Server) Config(bucket string) s3b.Config {
	p := credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
	return s3b.Config{Bucket: bucket, Endpoint: s.Endpoint, Region: "us-east-1", PathStyle: true, Static: &p}
}

// CreateBucket makes a new bucket with a random name and returns the name.
func (s Server) CreateBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "lamina-test-" + hex.EncodeToString(b[:])
	cl := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

var (
	realOnce sync.Once
	real     Server
	realErr  error
)

// Real returns the real S3 server for this test process, starting versitygw
// if needed (it stops when the process exits).
func Real(t testing.TB) Server {
	t.Helper()
	realOnce.Do(func() { real, realErr = findReal() })
	if realErr != nil {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "1" {
			t.Skipf("no S3 server: %v", realErr)
		}
		t.Fatalf("no S3 server (set LAMINA_ALLOW_SKIP=1 to skip): %v", realErr)
	}
	return real
}

func findReal() (Server, error) {
	if ep := os.Getenv("LAMINA_S3_ENDPOINT"); ep != "" {
		return Server{Endpoint: ep, AccessKey: os.Getenv("LAMINA_S3_ACCESS_KEY"), SecretKey: os.Getenv("LAMINA_S3_SECRET_KEY")}, nil
	}
	bin := os.Getenv("LAMINA_VERSITYGW")
	if bin == "" {
		bin, _ = exec.LookPath("versitygw")
	}
	if bin == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".cache/lamina-ci/bin/versitygw"); fileExists(p) {
				bin = p
			}
		}
	}
	if bin == "" {
		return Server{}, fmt.Errorf("set LAMINA_S3_ENDPOINT or install versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	srv, _, err := StartVersity(bin)
	return srv, err
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// StartVersity starts versitygw on a free loopback port with a new temporary
// posix folder and waits until it answers. The caller stops it with stop.
func StartVersity(bin string) (Server, func(), error) {
	removeStale()
	dir, err := os.MkdirTemp("", "lamina-versitygw-")
	if err != nil {
		return Server{}, nil, err
	}
	addr, err := freePort()
	if err != nil {
		return Server{}, nil, err
	}
	srv := Server{Endpoint: "http://" + addr, AccessKey: "lamina-test", SecretKey: "lamina-test-secret"}
	cmd := exec.Command(bin, "--access", srv.AccessKey, "--secret", srv.SecretKey, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	// The server dies with the test process that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return Server{}, nil, err
	}
	// A test process that exits takes its server along (Pdeathsig) but
	// cannot remove the folder: the pid file lets the next start do it.
	_ = os.WriteFile(dir+".pid", []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	stop := func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = os.RemoveAll(dir)
		_ = os.Remove(dir + ".pid")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return srv, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return Server{}, nil, fmt.Errorf("versitygw did not listen on %s within 20 s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeStale removes the folders of servers started by test processes
// that have exited.
func removeStale() {
	pids, _ := filepath.Glob(filepath.Join(os.TempDir(), "lamina-versitygw-*.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue // alive (or not ours to judge)
		}
		_ = os.RemoveAll(strings.TrimSuffix(p, ".pid"))
		_ = os.Remove(p)
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Fake starts an in-process gofakes3 server on 127.0.0.1 for the test.
func Fake(t testing.TB) Server {
	t.Helper()
	f := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true))
	ts := httptest.NewServer(f.Server())
	t.Cleanup(ts.Close)
	return Server{Endpoint: ts.URL, AccessKey: "fake", SecretKey: "fake-secret"}
}

// CreateBucketOK is CreateBucket with the server's admin credentials even
// when s carries others (tests of wrong credentials).
func (s Server) CreateBucketOK(t testing.TB) string {
	t.Helper()
	admin := s
	r := Real(t)
	if s.Endpoint == r.Endpoint {
		admin = r
	}
	return admin.CreateBucket(t)
}
