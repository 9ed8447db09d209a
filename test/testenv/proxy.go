package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// StartCuttingProxy forwards loopback TCP connections to target (a real server) until
// cutAfter bytes have gone from clients to the server; then it cuts every open
// connection and closes every new one at once: a network failure in the middle of an
// upload, for tests of what a failed transfer leaves behind. It returns host:port.
func StartCuttingProxy(tb testing.TB, target string, cutAfter int64) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	p := &cuttingProxy{target: target, left: cutAfter, conns: map[net.Conn]bool{}}
	go p.serve(l)
	tb.Cleanup(func() { _ = l.Close(); p.cutAll() })
	return l.Addr().String()
}

type cuttingProxy struct {
	target string
	left   int64 // bytes until the cut; atomic
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
	go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
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
