package blob_test

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tasker/tasker/internal/blob"
)

// TestS3PresignGetServesWithOverriddenHeaders fetches a presigned URL with no
// credentials. gofakes3 honours response-content-type and
// response-content-disposition, so the headers are checked too; it checks
// neither signature nor expiry, so those are only checked to be in the URL.
func TestS3PresignGetServesWithOverriddenHeaders(t *testing.T) {
	t.Parallel()
	s, _ := newS3(t)
	data := randomBytes(1000, 7)
	key := tenantA + "/report"
	put(t, s, key, data)

	const ctype, disp = "application/pdf", `attachment; filename="report.pdf"`
	u, ok, err := s.PresignGet(t.Context(), key, 5*time.Minute, ctype, disp)
	if err != nil || !ok {
		t.Fatalf("PresignGet = %q, %v, %v", u, ok, err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := parsed.Query()
	if q.Get("X-Amz-Signature") == "" || q.Get("X-Amz-Expires") != "300" {
		t.Errorf("URL lacks a signature or a 300 s expiry: %s", u)
	}

	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != string(data) {
		t.Fatalf("GET = %s with %d bytes, want 200 with %d", resp.Status, len(body), len(data))
	}
	if got := resp.Header.Get("Content-Type"); got != ctype {
		t.Errorf("Content-Type = %q, want %q", got, ctype)
	}
	if got := resp.Header.Get("Content-Disposition"); got != disp {
		t.Errorf("Content-Disposition = %q, want %q", got, disp)
	}

	if _, _, err := s.PresignGet(t.Context(), key, 0, "", ""); err == nil {
		t.Error("PresignGet with ttl 0 succeeded")
	}
}

func TestS3CreateBucketIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := newS3(t) // has created the bucket once
	if err := s.CreateBucket(t.Context()); err != nil {
		t.Errorf("second CreateBucket = %v, want nil", err)
	}
}

func TestNewS3RejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]blob.S3Config{
		"no bucket":         {Region: "us-east-1"},
		"part too small":    {Region: "us-east-1", Bucket: "b", PartSize: 1 << 20},
		"negative parallel": {Region: "us-east-1", Bucket: "b", Concurrency: -1},
	} {
		if _, err := blob.NewS3(t.Context(), c); err == nil {
			t.Errorf("%s: NewS3 succeeded", name)
		}
	}
}
