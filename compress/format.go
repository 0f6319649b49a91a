package compress

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Marker starts every stored value that the decorator transformed: a
// compressed value, or a raw value escaped because it starts with Marker
// itself. One byte follows it, the format of the rest: 'z' a zstd frame,
// 's' an S2 block, 'r' the raw value as given. A stored value that does not
// start with Marker is the value itself, byte for byte. Marker starts with
// 0xFF, a byte that never appears in UTF-8 text (JSON included), so that
// strings and JSON documents are always stored and read as they are.
const Marker = "\xffkv"

// The format bytes that follow Marker.
const (
	tagRaw  = 'r'
	tagS2   = 's'
	tagZstd = 'z'
)

// headerLen is the length of Marker and its format byte.
const headerLen = len(Marker) + 1

// decompressions counts the values decompressed, for the tests: a hit served
// from a near cache must not add to it.
var decompressions atomic.Int64

// The zstd encoder and decoder are shared by every Backend of the process:
// EncodeAll and DecodeAll are safe for concurrent use, and neither starts a
// goroutine. The decoder decodes no more than the capacity of the buffer it
// is given, which the frame's content size sets after it is checked against
// the Backend's maximum.
var (
	zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		// A single segment: the frame always declares its content size,
		// which decode checks before it allocates.
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithSingleSegment(true))
	})
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
	})
)

// codec turns values into stored values and back.
type codec struct {
	alg       Algorithm
	threshold int  // values shorter than this are stored raw
	max       int  // the largest value written or decoded
	force     bool // compress even when it does not make the value shorter (tests)
}

// encode returns the stored form of v: compressed when v is at least the
// threshold long and compression makes it shorter, otherwise v itself, or v
// escaped when it starts with Marker. The result is a canonical encoding: the
// same v always gives the same bytes, in every process with the same options.
func (c *codec) encode(v []byte) ([]byte, error) {
	if len(v) > c.max {
		return nil, fmt.Errorf("%w: a value of %d bytes (the maximum is %d)", ErrTooLarge, len(v), c.max)
	}
	if len(v) > 0 && len(v) >= c.threshold {
		out, err := c.compress(v)
		if err != nil {
			return nil, err
		}
		if len(out) < len(v) || c.force {
			return out, nil
		}
	}
	if !bytes.HasPrefix(v, []byte(Marker)) {
		return v, nil
	}
	out := make([]byte, 0, headerLen+len(v))
	out = append(append(out, Marker...), tagRaw)
	return append(out, v...), nil
}

// compress returns Marker, the format byte and v compressed.
func (c *codec) compress(v []byte) ([]byte, error) {
	switch c.alg {
	case Zstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("compress: zstd encoder: %w", err)
		}
		out := make([]byte, headerLen, headerLen+len(v)/2+32)
		copy(out, Marker)
		out[len(Marker)] = tagZstd
		return enc.EncodeAll(v, out), nil
	default:
		n := s2.MaxEncodedLen(len(v))
		if n < 0 {
			return nil, fmt.Errorf("%w: a value of %d bytes", ErrTooLarge, len(v))
		}
		out := make([]byte, headerLen+n)
		copy(out, Marker)
		out[len(Marker)] = tagS2
		enc := s2.Encode(out[headerLen:], v)
		return out[:headerLen+len(enc)], nil
	}
}

// decode returns the value whose stored form is stored: stored itself, or a
// part of it, unless it was compressed. It fails with an error wrapping
// ErrCorrupt when stored starts with Marker but is not a valid stored value,
// and one wrapping ErrTooLarge when it would decode to more than the maximum
// (checked before decoding: a small value cannot make the process allocate
// more).
func (c *codec) decode(stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, []byte(Marker)) {
		return stored, nil
	}
	if len(stored) < headerLen {
		return nil, fmt.Errorf("%w: the marker without a format byte", ErrCorrupt)
	}
	p := stored[headerLen:]
	switch tag := stored[len(Marker)]; tag {
	case tagRaw:
		return p, nil
	case tagS2:
		n, err := s2.DecodedLen(p)
		if err != nil {
			return nil, fmt.Errorf("%w: S2: %w", ErrCorrupt, err)
		}
		if n > c.max {
			return nil, fmt.Errorf("%w: it decodes to %d bytes (the maximum is %d)", ErrTooLarge, n, c.max)
		}
		decompressions.Add(1)
		out, err := s2.Decode(make([]byte, n), p)
		if err != nil {
			return nil, fmt.Errorf("%w: S2: %w", ErrCorrupt, err)
		}
		return out, nil
	case tagZstd:
		var h zstd.Header
		if err := h.Decode(p); err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		if !h.HasFCS || h.Skippable {
			return nil, fmt.Errorf("%w: zstd: a frame without its content size", ErrCorrupt)
		}
		if h.FrameContentSize > uint64(c.max) {
			return nil, fmt.Errorf("%w: it decodes to %d bytes (the maximum is %d)", ErrTooLarge, h.FrameContentSize, c.max)
		}
		dec, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("compress: zstd decoder: %w", err)
		}
		decompressions.Add(1)
		// The decoder writes no more than the capacity given: the content
		// size the frame declares, which was checked.
		out, err := dec.DecodeAll(p, make([]byte, 0, h.FrameContentSize))
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded):
			return nil, fmt.Errorf("%w: zstd: the data decodes to more than the frame's content size", ErrCorrupt)
		case err != nil:
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		case uint64(len(out)) != h.FrameContentSize:
			return nil, fmt.Errorf("%w: zstd: %d bytes decoded, the frame declares %d", ErrCorrupt, len(out), h.FrameContentSize)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown format byte %#x after the marker", ErrCorrupt, tag)
	}
}
