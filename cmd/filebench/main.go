// Command filebench measures uploads through a real Tasker server process: a file of -size
// bytes (1 GiB by default) is streamed to POST /v1/files, and the run reports the throughput
// beside `cp` of the same bytes to the same disk, measured in the same run, and the server's
// heap and RSS growth, sampled from its /metrics every 10 ms during the upload.
//
//	go build -o bin/tasker ./cmd/server
//	filebench -server bin/tasker -database-url postgres://... -store dir -runs 3
//	filebench -server bin/tasker -database-url postgres://... -store s3
//
// The server is started by filebench (migrate, then serve on a free loopback port) with its
// FILE_DIR inside -work, where the source file and cp's copy live too, so both write to the
// same disk. With -store s3 the server talks to an S3-compatible server that filebench runs in
// its own process (gofakes3 with an in-memory backend): the figures then measure Tasker's S3
// path (multipart upload over loopback HTTP), not a real bucket. Every upload's sha256 is
// checked against the source's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/blob"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "filebench:", err)
		os.Exit(1)
	}
}

type options struct {
	server, databaseURL, store, work string
	size                             int64
	runs                             int
}

func run() error {
	var o options
	flag.StringVar(&o.server, "server", "bin/tasker", "the Tasker binary to start")
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL for the server (migrated by filebench)")
	flag.StringVar(&o.store, "store", "dir", "dir or s3")
	flag.StringVar(&o.work, "work", "tmp/filebench", "work folder: the source file, cp's copy and the server's FILE_DIR")
	flag.Int64Var(&o.size, "size", 1<<30, "bytes to upload")
	flag.IntVar(&o.runs, "runs", 3, "uploads (each after a cp of the same bytes)")
	flag.Parse()
	if o.databaseURL == "" {
		return errors.New("-database-url (or DATABASE_URL) is required")
	}
	if o.store != "dir" && o.store != "s3" {
		return fmt.Errorf("-store %q: want dir or s3", o.store)
	}
	ctx := context.Background()
	if err := os.MkdirAll(o.work, 0o750); err != nil {
		return err
	}
	src := filepath.Join(o.work, "source.bin")
	sum, err := writeSource(src, o.size)
	if err != nil {
		return err
	}
	defer os.Remove(src)

	env := []string{
		"DATABASE_URL=" + o.databaseURL, "LOG_LEVEL=warn", "LOGIN_RATE_PER_IP=1000",
		"FILE_MAX_BYTES=" + strconv.FormatInt(o.size+1, 10), "PLAN_LIMITS_FREE=seats=5 projects=10 storage=" + strconv.FormatInt(4*o.size+1, 10),
		"FILE_DIR=" + filepath.Join(o.work, "files"),
	}
	if o.store == "s3" {
		endpoint, stop, err := startS3(ctx)
		if err != nil {
			return err
		}
		defer stop()
		env = append(env, "FILE_STORE=s3", "S3_ENDPOINT="+endpoint, "S3_BUCKET=filebench", "S3_PATH_STYLE=true",
			"S3_ACCESS_KEY_ID=filebench", "S3_SECRET_ACCESS_KEY=filebench")
	}
	base, stop, err := startServer(ctx, o.server, env)
	if err != nil {
		return err
	}
	defer stop()
	client, token, err := signUp(ctx, base)
	if err != nil {
		return err
	}

	fmt.Printf("store %s, %d MiB, source sha256 %s…\n", o.store, o.size>>20, sum[:16])
	fmt.Println("run | cp MiB/s | cp+sync MiB/s | upload MiB/s | upload/cp | upload/(cp+sync) | heap growth MiB (inuse, alloc) | RSS growth MiB")
	for i := 1; i <= o.runs; i++ {
		cp, cpSync, err := timeCopy(src, filepath.Join(o.work, "copy.bin"))
		if err != nil {
			return err
		}
		up, err := timeUpload(ctx, client, base, token, src, o.size, sum)
		if err != nil {
			return err
		}
		mibps := func(d time.Duration) float64 { return float64(o.size) / (1 << 20) / d.Seconds() }
		fmt.Printf("%d | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f, %.1f | %.1f\n", i, mibps(cp), mibps(cpSync), mibps(up.took),
			cp.Seconds()/up.took.Seconds(), cpSync.Seconds()/up.took.Seconds(),
			up.heapInuse/(1<<20), up.heapAlloc/(1<<20), up.rss/(1<<20))
	}
	return nil
}

// writeSource fills path with size bytes that sniff as PNG (the signature, then pseudo-random
// bytes no layer can compress), and returns their sha256.
func writeSource(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	rng := rand.NewChaCha8([32]byte{'f', 'i', 'l', 'e', 'b', 'e', 'n', 'c', 'h'})
	buf := make([]byte, 1<<20)
	for written := int64(0); written < size; {
		_, _ = rng.Read(buf)
		if written == 0 {
			copy(buf, "\x89PNG\r\n\x1a\n")
		}
		n := min(int64(len(buf)), size-written)
		if _, err := w.Write(buf[:n]); err != nil {
			return "", err
		}
		written += n
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Sync()
}

// timeCopy runs cp, then sync of the copy: the baseline without and with waiting for the disk,
// which Tasker's directory store does (fsync before rename).
func timeCopy(src, dst string) (cp, cpSync time.Duration, err error) {
	defer os.Remove(dst)
	start := time.Now()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("cp: %v: %s", err, out)
	}
	cp = time.Since(start)
	if out, err := exec.Command("sync", dst).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("sync: %v: %s", err, out)
	}
	return cp, time.Since(start), nil
}

type uploadResult struct {
	took                 time.Duration
	heapInuse, heapAlloc float64 // peak growth over the reading before the upload
	rss                  float64
}

// timeUpload streams src as a multipart upload, sampling the server's memory meanwhile, then
// checks the stored sha256 and deletes the file again.
func timeUpload(ctx context.Context, client *api.ClientWithResponses, base, token, src string, size int64, sum string) (uploadResult, error) {
	before, err := scrape(ctx, base)
	if err != nil {
		return uploadResult{}, err
	}
	peak := before
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s, err := scrape(ctx, base); err == nil {
					peak = peak.max(s)
				}
			}
		}
	}()

	f, err := os.Open(src)
	if err != nil {
		return uploadResult{}, err
	}
	defer f.Close()
	// As a browser or curl sends a file: with its Content-Length, the file read in large chunks.
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile("file", "filebench.png"); err != nil {
		return uploadResult{}, err
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	body := io.MultiReader(bytes.NewReader(head.Bytes()), bufio.NewReaderSize(f, 1<<20), strings.NewReader(tail))
	req, err := api.NewUploadFileRequestWithBody(base, mw.FormDataContentType(), body)
	if err != nil {
		return uploadResult{}, err
	}
	req.ContentLength = int64(head.Len()) + size + int64(len(tail))
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	httpResp, err := uploadClient.Do(req.WithContext(ctx))
	var resp *api.UploadFileResponse
	if err == nil {
		resp, err = api.ParseUploadFileResponse(httpResp)
	}
	took := time.Since(start)
	close(done)
	wg.Wait()
	if err != nil {
		return uploadResult{}, err
	}
	if resp.JSON201 == nil {
		return uploadResult{}, fmt.Errorf("upload: %d %s", resp.StatusCode(), resp.Body)
	}
	if resp.JSON201.Sha256 != sum || resp.JSON201.Size != size {
		return uploadResult{}, fmt.Errorf("stored %d bytes with sha256 %s; sent %d with %s", resp.JSON201.Size, resp.JSON201.Sha256, size, sum)
	}
	if del, err := client.DeleteFileWithResponse(ctx, resp.JSON201.Id, bearer(token)); err != nil || del.StatusCode() != http.StatusNoContent {
		return uploadResult{}, fmt.Errorf("delete: %v", err)
	}
	return uploadResult{took: took, heapInuse: peak.heapInuse - before.heapInuse, heapAlloc: peak.heapAlloc - before.heapAlloc, rss: peak.rss - before.rss}, nil
}

// uploadClient writes the body through 1 MiB buffers instead of the transport's 4 KiB.
var uploadClient = &http.Client{Transport: &http.Transport{WriteBufferSize: 1 << 20, ReadBufferSize: 64 << 10}}

func bearer(token string) api.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// signUp creates a tenant and returns a client and its owner's access token.
func signUp(ctx context.Context, base string) (*api.ClientWithResponses, string, error) {
	client, err := api.NewClientWithResponses(base, api.WithHTTPClient(&http.Client{}))
	if err != nil {
		return nil, "", err
	}
	slug := fmt.Sprintf("filebench-%d", time.Now().UnixNano())
	resp, err := client.SignupWithResponse(ctx, api.SignupRequest{
		TenantName: "filebench", TenantSlug: slug, Email: openapi_types.Email("bench@example.test"),
		Password: "filebench password", Name: "Bench",
	})
	if err != nil {
		return nil, "", err
	}
	if resp.JSON201 == nil {
		return nil, "", fmt.Errorf("signup: %d %s", resp.StatusCode(), resp.Body)
	}
	return client, resp.JSON201.Tokens.AccessToken, nil
}

// startServer migrates and starts the server on a free loopback port and waits until it is ready.
func startServer(ctx context.Context, bin string, env []string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	env = append(append(os.Environ(), env...), "LISTEN_ADDR="+addr)
	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("migrate: %v: %s", err, out)
	}
	serve := exec.CommandContext(ctx, bin, "serve")
	serve.Env = env
	serve.Stdout, serve.Stderr = os.Stderr, os.Stderr
	if err := serve.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
	}
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r, err := http.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
	}
	stop()
	return "", nil, errors.New("the server did not become ready in 30 s")
}

// startS3 runs an in-memory S3-compatible server in this process, with the bucket made.
func startS3(ctx context.Context) (string, func(), error) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	s, err := blob.NewS3(ctx, blob.S3Config{Endpoint: srv.URL, Region: "us-east-1", Bucket: "filebench", PathStyle: true,
		AccessKeyID: "filebench", SecretAccessKey: "filebench"})
	if err == nil {
		err = s.CreateBucket(ctx)
	}
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	return srv.URL, srv.Close, nil
}

// stats are the server's memory readings from /metrics.
type stats struct{ heapInuse, heapAlloc, rss float64 }

func (s stats) max(o stats) stats {
	return stats{max(s.heapInuse, o.heapInuse), max(s.heapAlloc, o.heapAlloc), max(s.rss, o.rss)}
}

func scrape(ctx context.Context, base string) (stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return stats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return stats{}, err
	}
	defer resp.Body.Close()
	var s stats
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		var field *float64
		switch name {
		case "go_memstats_heap_inuse_bytes":
			field = &s.heapInuse
		case "go_memstats_heap_alloc_bytes":
			field = &s.heapAlloc
		case "process_resident_memory_bytes":
			field = &s.rss
		}
		if !ok || field == nil {
			continue
		}
		if *field, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
			return stats{}, err
		}
		found++
	}
	if found != 3 {
		return stats{}, fmt.Errorf("metrics: found %d of 3 readings", found)
	}
	return s, sc.Err()
}
