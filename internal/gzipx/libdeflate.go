//go:build cgo

package gzipx

/*
// The static archive, named explicitly: the binary must not need libdeflate.so at run
// time (the images carry no libdeflate), whether or not the link is static.
#cgo LDFLAGS: -l:libdeflate.a
#include <stdint.h>
#include <stdlib.h>
#include <libdeflate.h>
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"
)

var implLibdeflate = "libdeflate " + C.LIBDEFLATE_VERSION_STRING

// DefaultLevel is the level GZIP_LEVEL=auto gives over an uncompressed archive, which
// the backup compacts first (pg.CompactArchive): measured on the compacted -Z0 archives
// of the ERP and Protheus-shaped fixtures (README, Benchmarks), libdeflate's 4 is
// 1.006x / 1.007x the operations page's size (too close to the 1.02x limit), 5 is
// 0.964x / 0.974x, 6 is 0.950x / 0.925x at 1.2x-1.3x the CPU of 5, 7 is 0.940x on
// ERP at 1.4x the CPU of 6. 5 keeps a margin of 4.5 % under the limit on both and
// costs the least CPU per GB, which is what a fleet of nightly backups pays. Over an
// archive as pg_dump -Z0 writes it (a 5-byte header per row), 6 was 1.022x and 7
// 1.013x.
const DefaultLevel = 5

// MemberSize is the input per gzip member. Each member starts with an empty window,
// so smaller members lose ratio; each holds an input and an output buffer, so larger
// ones cost memory. Measured at level 6 on the ERP fixture: 1 MiB members 1.024× the
// page's size, 2 MiB 1.022×, 4 MiB 1.022×, 8 MiB 1.021×.
const MemberSize = 2 << 20

// memberBudget bounds the members' buffers (input + output per member in flight), so
// memory stays flat with the database's size and with the node's CPUs.
const memberBudget = 32 << 20

const (
	headerSize  = 10
	trailerSize = 8
)

// memberHeader: no name, no time, no extra field; OS unknown.
var memberHeader = [headerSize]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// member's buffers live in C memory, allocated once per writer: outside the Go heap
// they count once in the resident size, where the garbage collector would let a heap
// holding them grow to twice their size.
type member struct {
	in   []byte
	out  []byte // header, deflate, trailer; len is what to write
	done chan error
	mem  unsafe.Pointer
}

// memberWriter compresses each member with libdeflate on one of its workers and
// writes the members in order.
type memberWriter struct {
	w         io.Writer
	blockSize int

	free    chan *member // members whose buffers may be refilled
	jobs    chan *member // to the workers
	order   chan *member // to the emitter, in input order
	cur     *member
	wrote   bool // a member was handed out: Close needs none if the input ended
	emitted chan struct{}
	workers sync.WaitGroup

	release func() // gives the members' C memory back to the soft memory limit

	mu     sync.Mutex
	err    error
	closed bool
}

func newMemberWriter(w io.Writer, level, workers, blockSize int) (*memberWriter, error) {
	if level < 0 || level > 12 {
		return nil, errors.New("gzipx: libdeflate has no such level")
	}
	// workers compressing, one being filled, one being written.
	n := max(workers, 1) + 2
	n = max(min(n, memberBudget/(2*blockSize)), 3)
	workers = n - 2
	z := &memberWriter{
		w: w, blockSize: blockSize,
		free: make(chan *member, n), jobs: make(chan *member, n), order: make(chan *member, n),
		emitted: make(chan struct{}),
	}
	comps := make([]*C.struct_libdeflate_compressor, workers)
	for i := range comps {
		if comps[i] = C.libdeflate_alloc_compressor(C.int(level)); comps[i] == nil {
			for _, c := range comps[:i] {
				C.libdeflate_free_compressor(c)
			}
			return nil, errors.New("gzipx: allocating a libdeflate compressor failed")
		}
	}
	outSize := headerSize + int(C.libdeflate_deflate_compress_bound(comps[0], C.size_t(blockSize))) + trailerSize
	for range n {
		mem := C.malloc(C.size_t(blockSize + outSize))
		if mem == nil {
			z.freeMembers()
			for _, c := range comps {
				C.libdeflate_free_compressor(c)
			}
			return nil, errors.New("gzipx: allocating a member's buffers failed")
		}
		buf := unsafe.Slice((*byte)(mem), blockSize+outSize)
		z.free <- &member{in: buf[:0:blockSize], out: buf[blockSize : blockSize : blockSize+outSize], done: make(chan error, 1), mem: mem}
	}
	z.release = reserveOffHeap(int64(n) * int64(blockSize+outSize))
	for _, c := range comps {
		z.workers.Add(1)
		go z.work(c)
	}
	go z.emit()
	return z, nil
}

func (z *memberWriter) fail(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

func (z *memberWriter) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *memberWriter) work(c *C.struct_libdeflate_compressor) {
	defer z.workers.Done()
	defer C.libdeflate_free_compressor(c)
	for m := range z.jobs {
		m.done <- compressMember(c, m)
	}
}

// compressMember writes m.in as one gzip member into m.out.
func compressMember(c *C.struct_libdeflate_compressor, m *member) error {
	var dummy [1]byte
	in := unsafe.Pointer(&dummy[0]) // libdeflate reads nothing of an empty input
	if len(m.in) > 0 {
		in = unsafe.Pointer(&m.in[0])
	}
	out := m.out[:cap(m.out)] // the bound of a whole member's input
	copy(out, memberHeader[:])
	n := int(C.libdeflate_deflate_compress(c, in, C.size_t(len(m.in)),
		unsafe.Pointer(&out[headerSize]), C.size_t(len(out)-headerSize-trailerSize)))
	if n == 0 {
		return fmt.Errorf("gzipx: libdeflate could not compress %d bytes into its bound", len(m.in))
	}
	crc := uint32(C.libdeflate_crc32(0, in, C.size_t(len(m.in))))
	binary.LittleEndian.PutUint32(out[headerSize+n:], crc)
	binary.LittleEndian.PutUint32(out[headerSize+n+4:], uint32(len(m.in)))
	m.out = out[:headerSize+n+trailerSize]
	return nil
}

// emit writes the members in order and frees their buffers; after an error it only
// frees them, so Write never waits for ever.
func (z *memberWriter) emit() {
	defer close(z.emitted)
	for m := range z.order {
		if err := <-m.done; err != nil {
			z.fail(err)
		}
		if z.failed() == nil {
			if _, err := z.w.Write(m.out); err != nil {
				z.fail(err)
			}
		}
		m.in = m.in[:0]
		z.free <- m
	}
}

// Write buffers p and hands full members to the workers.
func (z *memberWriter) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errors.New("gzipx: write after close")
	}
	n := len(p)
	for len(p) > 0 {
		if err := z.failed(); err != nil {
			return 0, err
		}
		if z.cur == nil {
			z.cur = <-z.free
		}
		k := min(len(p), z.blockSize-len(z.cur.in))
		z.cur.in = append(z.cur.in, p[:k]...)
		p = p[k:]
		if len(z.cur.in) == z.blockSize {
			z.dispatch()
		}
	}
	return n, z.failed()
}

func (z *memberWriter) dispatch() {
	m := z.cur
	z.cur = nil
	z.wrote = true
	z.order <- m
	z.jobs <- m
}

// Close compresses what is buffered (an empty input is one empty member: a valid gzip
// stream), and waits for all output.
func (z *memberWriter) Close() error {
	if z.closed {
		return z.failed()
	}
	z.closed = true
	if z.cur == nil && !z.wrote {
		z.cur = <-z.free
	}
	if z.cur != nil && (len(z.cur.in) > 0 || !z.wrote) {
		z.dispatch()
	}
	close(z.jobs)
	close(z.order)
	z.workers.Wait()
	<-z.emitted
	z.freeMembers()
	return z.failed()
}

// freeMembers releases the members' C memory; nothing holds a member any more.
func (z *memberWriter) freeMembers() {
	if z.cur != nil {
		z.free <- z.cur
		z.cur = nil
	}
	for {
		select {
		case m := <-z.free:
			C.free(m.mem)
		default:
			if z.release != nil {
				z.release()
			}
			return
		}
	}
}
