// Package userid parses and makes user ids in the canonical text the user
// service answers with: a UUID in lowercase, or a decimal integer
// 0..2^63-1 (the two never name the same user).
package userid

import (
	crand "crypto/rand"
	"math/rand"
	"strconv"
)

const hexDigits = "0123456789abcdef"

// Parse returns id in canonical form, and false when id is neither a UUID
// in the 8-4-4-4-12 hex form (any case; lowercase out) nor a decimal
// integer 0..2^63-1 without sign or leading zeros: the same rule as the
// segments server.
func Parse(id string) (string, bool) {
	if isDecimal(id) {
		if len(id) > 1 && id[0] == '0' {
			return "", false
		}
		if _, err := strconv.ParseInt(id, 10, 64); err != nil { // out of range
			return "", false
		}
		return id, true
	}
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

// isDecimal reports whether id is one or more ASCII digits and nothing else.
func isDecimal(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// Random returns a user id made from rng, so that a seeded rng gives the
// same ids every time: a version 4 UUID three times in four, otherwise an
// integer (RandomInteger).
func Random(rng *rand.Rand) string {
	if rng.Intn(4) == 0 {
		return RandomInteger(rng)
	}
	return RandomUUID(rng)
}

// RandomInteger returns a decimal integer id made from rng, of 1 to 19
// digits: a random value shifted right by a random amount, so that short
// ids (like the task statement's 1000) come up as well as long ones.
func RandomInteger(rng *rand.Rand) string {
	return strconv.FormatInt(rng.Int63()>>uint(rng.Intn(63)), 10)
}

// RandomUUID returns a version 4 UUID made from rng.
func RandomUUID(rng *rand.Rand) string {
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
