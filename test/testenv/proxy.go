package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StartCuttingProxy forwards loopback TCP connections to target (a real server) until
// cutAfter bytes have gone from clients to the server; then it cuts every open
// connection and closes every new one at once: a network failure in the middle of an
// upload, for tests of what a failed transfer leaves behind. It returns host:port.
func StartCuttingProxy(tb testing.TB, target string, cutAfter int64) string {
	tb.Helper()
	return startProxy(tb, &cuttingProxy{target: target, left: cutAfter, conns: map[net.Conn]bool{}})
}

// StartThrottlingProxy forwards loopback TCP connections to target, delivering the
// server's answers at about bytesPerSecond: a slow link, for tests that must catch a
// transfer in the middle. It returns host:port.
func StartThrottlingProxy(tb testing.TB, target string, bytesPerSecond int) string {
	tb.Helper()
	return startProxy(tb, &cuttingProxy{target: target, left: 1 << 62, rate: bytesPerSecond, conns: map[net.Conn]bool{}})
}

func startProxy(tb testing.TB, p *cuttingProxy) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	go p.serve(l)
	tb.Cleanup(func() { _ = l.Close(); p.cutAll() })
	return l.Addr().String()
}

type cuttingProxy struct {
	target string
	left   int64 // bytes until the cut; atomic
	rate   int   // server-to-client bytes per second; 0 is unlimited
	cut    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func (p *cuttingProxy) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			_ = c.Close()
			continue
		}
		go p.handle(c)
	}
}

func (p *cuttingProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *cuttingProxy) cutAll() {
	p.cut.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *cuttingProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	defer func() {
		p.track(client, false)
		p.track(server, false)
		_ = client.Close()
		_ = server.Close()
	}()
	go func() { _, _ = io.Copy(client, p.throttle(server)); _ = client.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if atomic.AddInt64(&p.left, -int64(n)) < 0 {
				p.cutAll()
				return
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// throttle paces reads from r at p.rate bytes per second.
func (p *cuttingProxy) throttle(r io.Reader) io.Reader {
	if p.rate <= 0 {
		return r
	}
	return &pacedReader{r: r, rate: p.rate, start: time.Now()}
}

type pacedReader struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int64
}

func (pr *pacedReader) Read(b []byte) (int, error) {
	if len(b) > 16<<10 {
		b = b[:16<<10]
	}
	n, err := pr.r.Read(b)
	pr.n += int64(n)
	due := pr.start.Add(time.Duration(float64(pr.n) / float64(pr.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
	return n, err
}
