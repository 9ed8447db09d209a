//go:build !cgo

package gzipx

import (
	"errors"
	"io"
)

// implLibdeflate is empty: a build without cgo has no libdeflate.
const implLibdeflate = ""

// DefaultLevel is the level GZIP_LEVEL=auto gives over an uncompressed archive: the
// standard library's 6 is within 2 % of the operations page's size.
const DefaultLevel = 6

// MemberSize is the libdeflate writer's member size; unused without cgo.
const MemberSize = 2 << 20

func newMemberWriter(io.Writer, int, int, int) (io.WriteCloser, error) {
	return nil, errors.New("gzipx: this build has no libdeflate (built without cgo)")
}
