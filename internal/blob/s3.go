package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

var _ Store = (*S3)(nil)

const (
	defaultPartSize    = 8 << 20
	defaultConcurrency = 2
	// abortTimeout bounds the clean-up of a failed multipart upload, which
	// runs after the caller's ctx may have ended.
	abortTimeout = 30 * time.Second
)

// S3Config says where an S3 store keeps its blobs and how it uploads them.
type S3Config struct {
	Endpoint        string // empty: AWS's own
	Region          string // empty: the SDK's default chain (AWS_REGION, shared config)
	Bucket          string
	AccessKeyID     string // empty: the SDK's default credential chain
	SecretAccessKey string
	PathStyle       bool  // bucket in the path, as MinIO and most S3-compatibles need
	PartSize        int64 // multipart part size, default 8 MiB, min 5 MiB (S3's own minimum)
	// Concurrency is the number of parts in flight, default 2. An upload
	// buffers about PartSize*(Concurrency+2) bytes: the first part, plus a
	// pool of Concurrency+1 part buffers once it turns multipart.
	Concurrency int
	// HTTPClient is optional. It is set in s3.Options, not with
	// config.WithHTTPClient, which fails when AWS_CA_BUNDLE is set.
	HTTPClient *http.Client
}

// S3 is a Store that keeps blobs as objects in one S3 (or S3-compatible)
// bucket. Put streams through the SDK's multipart uploader; downloads can go
// straight to the bucket through PresignGet.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	//lint:ignore SA1019 manager is what TOOLCHAIN.md tested on this machine; its successor transfermanager is still v0.x.
	uploader *manager.Uploader
	bucket   string
}

// NewS3 returns an S3 store for c. It does not contact S3: a wrong bucket or
// credentials show up on first use (CreateBucket is one way to check early).
//
// Checksums are computed and validated only when an operation requires them.
// With the SDK's default (always), uploads over TLS to S3-compatible servers
// that don't understand aws-chunked encoding store the chunk framing as the
// content, and every download logs a warning when the server sends no checksum.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	if c.Bucket == "" {
		return nil, errors.New("blob: s3: empty bucket name")
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = defaultPartSize
	case c.PartSize < manager.MinUploadPartSize:
		return nil, fmt.Errorf("blob: s3: part size %d below the minimum %d", c.PartSize, manager.MinUploadPartSize)
	}
	switch {
	case c.Concurrency == 0:
		c.Concurrency = defaultConcurrency
	case c.Concurrency < 0:
		return nil, fmt.Errorf("blob: s3: negative concurrency %d", c.Concurrency)
	}

	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("blob: s3: load config: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	//lint:ignore SA1019 see S3.uploader
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = c.PartSize
		u.Concurrency = c.Concurrency
		// The uploader has its own checksum default, separate from the client's.
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// The uploader aborts with the caller's ctx, which is often the
		// reason for the failure and so already cancelled: Put aborts itself.
		u.LeavePartsOnError = true
	})
	return &S3{client: client, presign: s3.NewPresignClient(client), uploader: uploader, bucket: c.Bucket}, nil
}

// Put uploads r with the SDK's uploader: one PutObject for a body shorter than
// PartSize, a multipart upload otherwise. S3 makes an object visible only once
// the upload completes, so a failed Put leaves any previous object untouched;
// the parts of a failed multipart upload are aborted even when ctx has ended.
// Aborting is best effort: a bucket lifecycle rule that aborts incomplete
// multipart uploads is the backstop.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := validateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	// ctxReader also hides any Seeker or ReaderAt of r: the uploader
	// would otherwise seek in the caller's reader.
	body := &ctxReader{ctx: ctx, r: r}
	//lint:ignore SA1019 see S3.uploader
	_, err := s.uploader.Upload(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: body})
	if err != nil {
		var mu manager.MultiUploadFailure
		if errors.As(err, &mu) {
			err = errors.Join(err, s.abort(ctx, key, mu.UploadID()))
		}
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	return body.n, nil
}

// abort drops the parts of a failed multipart upload, which S3 would keep
// (and bill) invisibly to List.
func (s *S3) abort(ctx context.Context, key, uploadID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
	})
	if err != nil {
		return fmt.Errorf("abort multipart upload %s: %w", uploadID, err)
	}
	return nil
}

// Open gets the object, with a Range header unless the whole object is wanted.
// For length 0 it returns an empty stream without asking S3, so it does not
// report ErrNotFound then. An offset at or past the end yields an empty stream,
// as it does from Dir (S3 answers 416 InvalidRange).
func (s *S3) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkOffset(offset); err != nil {
		return nil, err
	}
	if err := validateKey(key); err != nil {
		return nil, err
	}
	if length == 0 {
		return emptyBody(), nil
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if offset > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 && length <= math.MaxInt64-offset {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	switch {
	case err == nil:
		return out.Body, nil
	case isNotFound(err):
		return nil, fmt.Errorf("blob: open %q: %w", key, ErrNotFound)
	case hasCode(err, "InvalidRange") || statusCode(err) == http.StatusRequestedRangeNotSatisfiable:
		return emptyBody(), nil
	}
	return nil, fmt.Errorf("blob: open %q: %w", key, err)
}

// isNotFound reports a missing key. A missing bucket is a configuration error,
// not a missing blob, so it is not counted.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) || hasCode(err, "NoSuchKey") {
		return true
	}
	return statusCode(err) == http.StatusNotFound && !hasCode(err, "NoSuchBucket")
}

func hasCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

func statusCode(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// Delete deletes the object; S3 itself answers a missing key with success.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	return nil
}

// List pages through ListObjectsV2, in key order.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket}
	if prefix != "" {
		in.Prefix = &prefix
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blob: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// PresignGet signs a GetObject URL (SigV4 query parameters, valid for ttl; S3
// refuses more than 7 days) that asks S3 to answer with contentType and
// disposition, so a browser saves the file under its real name and type.
// Empty values leave the stored headers alone.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration, contentType, disposition string) (string, bool, error) {
	if err := validateKey(key); err != nil {
		return "", false, err
	}
	if ttl <= 0 {
		return "", false, fmt.Errorf("blob: presign %q: ttl %v is not positive", key, ttl)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if contentType != "" {
		in.ResponseContentType = &contentType
	}
	if disposition != "" {
		in.ResponseContentDisposition = &disposition
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", false, fmt.Errorf("blob: presign %q: %w", key, err)
	}
	return req.URL, true, nil
}

// CreateBucket creates the bucket, for tests and development. A bucket that
// already exists and that these credentials can reach is not an error.
func (s *S3) CreateBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	// us-east-1 is the default and S3 rejects it as a location constraint.
	if r := s.client.Options().Region; r != "" && r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	switch {
	case err == nil, errors.As(err, &owned):
		return nil
	case errors.As(err, &exists):
		// On AWS this means another account's bucket; gofakes3 and some
		// S3-compatibles say it for ours too. HeadBucket tells them apart.
		if _, herr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); herr == nil {
			return nil
		}
	}
	return fmt.Errorf("blob: create bucket %q: %w", s.bucket, err)
}
