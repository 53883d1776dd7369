package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/api"
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

// S3 is Content in an S3 bucket, under <prefix><algorithm>/<hex>: the same
// content-addressed layout as FS. Everything that decides whether bytes are right happens
// before they are sent: Put receives them into a locked file of tmp (on the local disk),
// hashes them and checks digest and size there, so a refused upload never reaches the
// bucket. Every object is sent with its SHA-256, so the store checks what arrived.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
	tmp    *Temp
}

// NewS3 connects to the bucket and checks that it can be reached; uploads are received
// into tmp before they are sent.
func NewS3(ctx context.Context, c S3Config, tmp *Temp) (*S3, error) {
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
	return &S3{client: client, bucket: c.Bucket, prefix: c.Prefix, tmp: tmp}, nil
}

func orAWS(endpoint string) string {
	if endpoint == "" {
		return "AWS"
	}
	return endpoint
}

func (s *S3) key(digest string) (string, error) {
	dg, err := api.ParseDigest(digest)
	algo, sum := dg.Algorithm, dg.Hex
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

// Stat implements Content.
func (s *S3) Stat(ctx context.Context, digest string) (Info, error) {
	key, err := s.key(digest)
	if err != nil {
		return Info{}, notStored(digest, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return Info{}, notStored(digest, nil)
		}
		return Info{}, fmt.Errorf("looking up blob %s in S3: %w", digest, err)
	}
	return Info{Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Put implements Content: the bytes are received and checked on the local disk, then sent
// in one PUT (S3 takes up to 5 GiB in one, above the default 1 GiB limit), so a refused or
// interrupted upload leaves no object and no multipart upload behind.
func (s *S3) Put(ctx context.Context, digest string, r io.Reader, max int64) (int64, error) {
	got, err := receive(s.tmp, digest, r, max)
	if err != nil {
		return 0, err
	}
	defer got.discard()
	if err := s.send(ctx, digest, got.f, got.size, got.sha256); err != nil {
		return 0, err
	}
	return got.size, nil
}

// Ingest implements Content: the file is sent, then removed.
func (s *S3) Ingest(ctx context.Context, digest, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening blob to store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening blob to store: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing blob to store: %w", err)
	}
	if err := s.send(ctx, digest, f, fi.Size(), h.Sum(nil)); err != nil {
		return err
	}
	f.Close()
	_ = os.Remove(path)
	return nil
}

// send puts the size bytes of f as the object of digest, with their sha256.
func (s *S3) send(ctx context.Context, digest string, f *os.File, size int64, sum256 []byte) error {
	key, err := s.key(digest)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading blob to store: %w", err)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(size),
		ContentType:    aws.String("application/octet-stream"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum256)),
	})
	if err != nil {
		return fmt.Errorf("storing blob %s in S3: %w", digest, err)
	}
	return nil
}

// Delete implements Content.
func (s *S3) Delete(ctx context.Context, digest string) error {
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
//
// It implements Content.
func (s *S3) Open(ctx context.Context, digest string) (io.ReadSeekCloser, int64, error) {
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
	s    *S3
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

// Leftovers lists what the bucket (under the prefix) holds besides intact blobs: keys that
// are not <algorithm>/<hex>, objects whose bytes do not hash to their key (a partial
// object), unfinished multipart uploads; and files in the local temporary directory. It
// reads every object: for tests and for checks an operator asks for, not for serving.
func (s *S3) Leftovers(ctx context.Context) ([]string, error) {
	out, err := tempLeftovers(s.tmp)
	if err != nil {
		return nil, err
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("listing the objects of bucket %s: %w", s.bucket, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			algo, sum, _ := strings.Cut(strings.TrimPrefix(key, s.prefix), "/")
			digest := algo + ":" + sum
			if k, err := s.key(digest); err != nil || k != key {
				out = append(out, "object with a key that is no digest: "+key)
				continue
			}
			if err := checkBytes(ctx, s, digest); err != nil {
				out = append(out, fmt.Sprintf("partial object %s: %v", key, err))
			}
		}
	}
	mp, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)})
	if err != nil {
		return out, fmt.Errorf("listing the multipart uploads of bucket %s: %w", s.bucket, err)
	}
	for _, u := range mp.Uploads {
		out = append(out, "unfinished multipart upload of "+aws.ToString(u.Key))
	}
	return out, nil
}

var _ Content = (*S3)(nil)
