package app_test

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/smartbackup/smartbackup/test/testenv"
)

// TestWatchesAreNotCompressed runs the webhook against a real kube-apiserver through a
// proxy that records what each request asked for and how each response came back.
// Asked for gzip, the apiserver compresses its watch streams event by event, a cost the
// shared apiserver pays for every pod, Namespace and CronJob event the webhook's cache
// takes in; the webhook must not ask for it, and the caller's configuration is left as
// it was.
func TestWatchesAreNotCompressed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)

	upstream, err := url.Parse(kube.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's own transport adds no Accept-Encoding: what reaches the apiserver is
	// what the webhook asked for.
	pc := rest.CopyConfig(kube.Config)
	pc.DisableCompression = true
	transport, err := rest.TransportFor(pc)
	if err != nil {
		t.Fatal(err)
	}
	type exchange struct{ path, accept, encoding string }
	var mu sync.Mutex
	var seen []exchange
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Query().Get("watch") == "true" {
				mu.Lock()
				seen = append(seen, exchange{resp.Request.URL.Path, resp.Request.Header.Get("Accept-Encoding"), resp.Header.Get("Content-Encoding")})
				mu.Unlock()
			}
			return nil
		},
	}
	// TLS, as in a cluster: over plain HTTP client-go hands every client Go's default
	// transport, which asks for gzip whatever the configuration says.
	srv := httptest.NewTLSServer(proxy)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	restConfig := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	runWebhook(t, restConfig, map[string]string{"SYNC_NAMESPACE": testenv.RandomName("smartbackup-")})
	// Ready means the namespaces' cache has synced; the other informers start with the
	// controllers: wait for the pods' watch.
	eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range seen {
			if e.path == "/api/v1/pods" {
				return nil
			}
		}
		return fmt.Errorf("no watch of pods yet (watches: %v)", seen)
	})

	mu.Lock()
	defer mu.Unlock()
	for _, e := range seen {
		if e.accept != "" || e.encoding != "" {
			t.Errorf("the watch of %s asked for Accept-Encoding %q and came back with Content-Encoding %q; want neither", e.path, e.accept, e.encoding)
		}
	}
	if restConfig.DisableCompression {
		t.Error("New changed the caller's configuration")
	}
}
