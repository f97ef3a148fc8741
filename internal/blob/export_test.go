package blob

import "github.com/aws/aws-sdk-go-v2/service/s3"

// S3Client lets tests look behind the Store API, e.g. for multipart uploads
// that a failed Put left behind.
func S3Client(s *S3) *s3.Client { return s.client }
