package pg

import (
	"strings"
	"testing"
)

// TestLastBytes: whatever the reads' sizes, the tail is the stream's last
// len(copyEnd)+1 bytes, and adding to it does not allocate.
func TestLastBytes(t *testing.T) {
	const stream = "1\tSão Paulo\n2\tx\n\\.\n\n\n"
	keep := len(copyEnd) + 1
	for size := 1; size <= len(stream); size++ {
		var l lastBytes
		for i := 0; i < len(stream); i += size {
			l.add([]byte(stream[i:min(i+size, len(stream))]))
			want := stream[max(0, min(i+size, len(stream))-keep):min(i+size, len(stream))]
			if got := string(l.bytes()); got != want {
				t.Fatalf("reads of %d, after %d bytes: %q, want %q", size, min(i+size, len(stream)), got, want)
			}
		}
	}
	var l lastBytes
	p := []byte(strings.Repeat("x", 3))
	if n := testing.AllocsPerRun(100, func() { l.add(p) }); n != 0 {
		t.Errorf("add allocates %.0f times", n)
	}
}
