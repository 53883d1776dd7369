package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config names a bucket of an S3-compatible object store.
type S3Config struct {
	// Endpoint is the store's base URL (empty: AWS's endpoint for Region).
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is prepended to every object key ("" or ending in "/").
	Prefix string
	// AccessKey and SecretKey; empty means the AWS SDK's default credential chain.
	AccessKey, SecretKey string
	// PathStyle addresses the bucket in the path (most S3-compatible servers need it).
	PathStyle bool
}

// S3Content keeps finished blobs in an S3 bucket under <prefix><algorithm>/<hex>, the same
// content-addressed layout as the file system store. Bytes are verified before they get
// here; every upload also carries its SHA-256 so the store checks what arrived.
type S3Content struct {
	client *s3.Client
	bucket string
	prefix string
}

// NewS3Content connects to the bucket and checks that it can be reached.
func NewS3Content(ctx context.Context, c S3Config) (*S3Content, error) {
	if c.Bucket == "" {
		return nil, errors.New("S3 blob storage needs a bucket")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		return nil, fmt.Errorf("S3 prefix %q must end in /", c.Prefix)
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	// The SDK's own logger would print to stderr; errors come back as values.
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region), awsconfig.WithLogger(logging.Nop{})}
	if c.AccessKey != "" || c.SecretKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("configuring the S3 client: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
	})
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.Bucket)}); err != nil {
		return nil, fmt.Errorf("S3 bucket %q at %s is not reachable: %w", c.Bucket, orAWS(c.Endpoint), err)
	}
	return &S3Content{client: client, bucket: c.Bucket, prefix: c.Prefix}, nil
}

func orAWS(endpoint string) string {
	if endpoint == "" {
		return "AWS"
	}
	return endpoint
}

func (s *S3Content) key(digest string) (string, error) {
	algo, sum, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return s.prefix + algo + "/" + sum, nil
}

// isNotFound reports whether err is the store's "no such object".
func isNotFound(err error) bool {
	var nk *s3types.NoSuchKey
	var nf *s3types.NotFound
	var re *smithyhttp.ResponseError
	return errors.As(err, &nk) || errors.As(err, &nf) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound)
}

// Stat returns the size and time of a stored blob, or an error wrapping os.ErrNotExist.
func (s *S3Content) Stat(ctx context.Context, digest string) (BlobInfo, error) {
	key, err := s.key(digest)
	if err != nil {
		return BlobInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return BlobInfo{}, fmt.Errorf("blob %s: %w", digest, os.ErrNotExist)
		}
		return BlobInfo{}, fmt.Errorf("looking up blob %s in S3: %w", digest, err)
	}
	return BlobInfo{Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Ingest uploads the verified file at path as the blob digest and removes the file.
func (s *S3Content) Ingest(ctx context.Context, digest, path string) error {
	key, err := s.key(digest)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening blob to store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing blob to store: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(fi.Size()),
		ContentType:    aws.String("application/octet-stream"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(h.Sum(nil))),
	})
	if err != nil {
		return fmt.Errorf("storing blob %s in S3: %w", digest, err)
	}
	f.Close()
	_ = os.Remove(path)
	return nil
}

// Delete removes a blob; a missing one is not an error.
func (s *S3Content) Delete(ctx context.Context, digest string) error {
	key, err := s.key(digest)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing blob %s from S3: %w", digest, err)
	}
	return nil
}

// Open returns a reader of the blob that seeks by issuing ranged GETs, so http.ServeContent
// answers Range requests without reading the whole object.
func (s *S3Content) Open(ctx context.Context, digest string) (io.ReadSeekCloser, int64, error) {
	info, err := s.Stat(ctx, digest)
	if err != nil {
		return nil, 0, err
	}
	key, _ := s.key(digest)
	return &s3Reader{ctx: ctx, s: s, key: key, size: info.Size}, info.Size, nil
}

// s3Reader reads an object from an offset; a Seek drops the open body.
type s3Reader struct {
	ctx  context.Context
	s    *S3Content
	key  string
	size int64

	mu   sync.Mutex
	off  int64
	body io.ReadCloser
}

func (r *s3Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body == nil {
		out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket: aws.String(r.s.bucket), Key: aws.String(r.key), Range: aws.String(fmt.Sprintf("bytes=%d-", r.off)),
		})
		if err != nil {
			return 0, fmt.Errorf("reading %s from S3: %w", r.key, err)
		}
		r.body = out.Body
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	if err == io.EOF && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errors.New("seek: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	if abs != r.off && r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.off = abs
	return abs, nil
}

func (r *s3Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

var _ Content = (*S3Content)(nil)
