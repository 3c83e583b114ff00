package main

import (
	"strings"
	"testing"
)

// TestS3MissingBucketAndNoCredentials: a bucket that does not exist is
// said so, with how to create one; without credentials only lamina's
// message shows, no line of the SDK's logger.
func TestS3MissingBucketAndNoCredentials(t *testing.T) {
	e := newS3Env(t)
	endpoint := e.srv.Endpoint
	_, errs, err := e.run("init", "--storage", "s3://no-such-bucket-here/x", "--name", "nob", "--endpoint", endpoint, "--path-style")
	if err == nil || !strings.Contains(errs, `bucket "no-such-bucket-here" does not exist: create it (`+"`aws s3 mb s3://no-such-bucket-here --endpoint-url "+endpoint+"`") {
		t.Errorf("init on a missing bucket: %v\n%s", err, errs)
	}
	e.env = append(e.env, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	_, errs, err = e.run("init", "--storage", "s3://"+e.bucket+"/other", "--name", "nocreds", "--endpoint", endpoint, "--path-style")
	if err == nil || !strings.Contains(errs, "no AWS credentials found") {
		t.Fatalf("init without credentials: %v\n%s", err, errs)
	}
	for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(l, "lamina: ") {
			t.Errorf("init without credentials printed a line not lamina's: %q", l)
		}
	}
}
