// Package userid parses and makes user ids: UUIDs in canonical lowercase
// text, the form the user service answers with.
package userid

import (
	crand "crypto/rand"
	"math/rand"
)

const hexDigits = "0123456789abcdef"

// Parse returns id in canonical lowercase form, and false when id is not a
// UUID in the 8-4-4-4-12 hex form (any case), the same rule as the segments
// server.
func Parse(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	var out [36]byte
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", false
		}
		out[i] = c
	}
	return string(out[:]), true
}

// Random returns a version 4 UUID made from rng, so that a seeded rng gives
// the same ids every time.
func Random(rng *rand.Rand) string {
	var b [16]byte
	hi, lo := rng.Uint64(), rng.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	return format(b)
}

// New returns a version 4 UUID from the system's secure random source.
func New() string {
	var b [16]byte
	crand.Read(b[:]) // never fails (Go 1.24+)
	return format(b)
}

// format sets the version and variant bits and writes b as canonical text.
func format(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var out [36]byte
	j := 0
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[v>>4], hexDigits[v&0x0f]
		j += 2
	}
	return string(out[:])
}
