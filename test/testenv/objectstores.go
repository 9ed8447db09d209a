package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/option"
)

// GCS is a running fake-gcs-server.
type GCS struct {
	Endpoint string // http://127.0.0.1:PORT
}

// S3 is a running MinIO server. Its credentials are exported to this process's
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), where the product's S3 driver
// finds them through the standard AWS chain, as it would find IRSA's in a cluster.
type S3 struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

var (
	gcsOnce sync.Once
	gcsInst *GCS
	gcsErr  error
	s3Once  sync.Once
	s3Inst  *S3
	s3Err   error
)

// StartGCS returns the process-wide GCS emulator, starting it on first use.
func StartGCS(tb testing.TB) *GCS {
	tb.Helper()
	gcsOnce.Do(func() {
		gcsErr = fmt.Errorf("an earlier start failed")
		gcsInst, gcsErr = startGCS(tb, "127.0.0.1", onStop), nil
	})
	if gcsErr != nil {
		tb.Fatalf("GCS emulator: %v", gcsErr)
	}
	return gcsInst
}

// startGCS starts an emulator listening on host; its stop function goes to onStop
// before it is waited for.
func startGCS(tb testing.TB, host string, onStop func(func())) *GCS {
	bin := Tool(tb, "fake-gcs-server")
	dir := scratchDir(tb, "gcs")
	port := FreePort(tb)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	p := startProcess(tb, filepath.Join(dir, "server.log"), nil, nil, bin,
		"-scheme", "http", "-host", host, "-port", strconv.Itoa(port),
		"-public-host", addr, "-external-url", "http://"+addr,
		"-backend", "filesystem", "-filesystem-root", filepath.Join(dir, "data"), "-log-level", "warn")
	onStop(func() { p.stop(syscall.SIGTERM) })
	endpoint := "http://" + addr
	waitHTTP(tb, p, endpoint+"/storage/v1/b")
	return &GCS{Endpoint: endpoint}
}

// NewBucket creates an empty bucket and returns its storage URL.
func (g *GCS) NewBucket(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	c, err := storage.NewClient(ctx, option.WithEndpoint(g.Endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		tb.Fatalf("GCS client: %v", err)
	}
	defer c.Close()
	name := RandomName("test-")
	if err := c.Bucket(name).Create(ctx, "test-project", nil); err != nil {
		tb.Fatalf("creating bucket %q: %v", name, err)
	}
	return g.URL(name)
}

// URL is the storage URL of a bucket of this emulator.
func (g *GCS) URL(bucket string) string {
	return fmt.Sprintf("gs://%s?endpoint=%s&anonymous=true", bucket, g.Endpoint)
}

// StartS3 returns the process-wide MinIO server, starting it on first use.
func StartS3(tb testing.TB) *S3 {
	tb.Helper()
	s3Once.Do(func() {
		s3Err = fmt.Errorf("an earlier start failed")
		bin := Tool(tb, "minio")
		dir := scratchDir(tb, "minio")
		port, console := FreePort(tb), FreePort(tb)
		inst := &S3{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "smartbackup-test", SecretKey: "smartbackup-test-secret"}
		p := startProcess(tb, filepath.Join(dir, "server.log"), nil,
			[]string{"MINIO_ROOT_USER=" + inst.AccessKey, "MINIO_ROOT_PASSWORD=" + inst.SecretKey,
				"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1"},
			bin, "server", filepath.Join(dir, "data"), "--address", fmt.Sprintf("127.0.0.1:%d", port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
		onStop(func() { p.stop(syscall.SIGTERM) })
		waitHTTP(tb, p, inst.Endpoint+"/minio/health/ready")
		// Ready can answer before the object layer is up ("XMinioServerNotInitialized"
		// on a loaded machine): wait until it lists buckets.
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := inst.Client().ListBuckets(context.Background(), &s3.ListBucketsInput{})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("MinIO answers ready but does not list buckets within 60s: %v; log: %s", err, tail(p.log))
			}
			time.Sleep(200 * time.Millisecond)
		}
		for k, v := range map[string]string{
			"AWS_ACCESS_KEY_ID": inst.AccessKey, "AWS_SECRET_ACCESS_KEY": inst.SecretKey,
			"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
		} {
			_ = os.Setenv(k, v)
		}
		s3Inst, s3Err = inst, nil
	})
	if s3Err != nil {
		tb.Fatalf("S3 server: %v", s3Err)
	}
	return s3Inst
}

// Client is an S3 client for test set-up (buckets), separate from the product's driver.
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// NewBucket creates an empty bucket and returns its storage URL.
func (s *S3) NewBucket(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := RandomName("test-")
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatalf("creating bucket %q: %v", name, err)
	}
	return s.URL(name)
}

// URL is the storage URL of a bucket of this server.
func (s *S3) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1", bucket, s.Endpoint)
}
