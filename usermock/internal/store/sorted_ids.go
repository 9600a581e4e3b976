package store

import (
	"slices"
	"sort"
)

// maxChunk bounds the chunks of sortedIDs: inserting or removing moves at
// most this many strings, and finding the i-th id walks len/maxChunk chunks.
const maxChunk = 1024

// sortedIDs is an ordered set of strings kept as a list of sorted chunks, so
// that insert, remove, the i-th element and "the ids after x" stay cheap with
// hundreds of thousands of users (a single sorted slice would move all of
// them on every insert).
type sortedIDs struct {
	chunks [][]string
	n      int
}

func (s *sortedIDs) Len() int { return s.n }

// chunkFor returns the index of the chunk id belongs in: the first whose last
// element is >= id, or the last chunk. There must be at least one chunk.
func (s *sortedIDs) chunkFor(id string) int {
	ci := sort.Search(len(s.chunks), func(k int) bool {
		c := s.chunks[k]
		return c[len(c)-1] >= id
	})
	if ci == len(s.chunks) {
		ci--
	}
	return ci
}

// Insert adds id, which must not be present.
func (s *sortedIDs) Insert(id string) {
	s.n++
	if len(s.chunks) == 0 {
		s.chunks = [][]string{{id}}
		return
	}
	ci := s.chunkFor(id)
	c := s.chunks[ci]
	c = slices.Insert(c, sort.SearchStrings(c, id), id)
	if len(c) <= maxChunk {
		s.chunks[ci] = c
		return
	}
	half := len(c) / 2
	right := slices.Clone(c[half:])
	left := slices.Clip(c[:half])
	s.chunks = slices.Insert(s.chunks, ci+1, right)
	s.chunks[ci] = left
}

// Remove deletes id if present.
func (s *sortedIDs) Remove(id string) {
	if len(s.chunks) == 0 {
		return
	}
	ci := s.chunkFor(id)
	c := s.chunks[ci]
	pos := sort.SearchStrings(c, id)
	if pos == len(c) || c[pos] != id {
		return
	}
	s.n--
	c = slices.Delete(c, pos, pos+1)
	if len(c) == 0 {
		s.chunks = slices.Delete(s.chunks, ci, ci+1)
		return
	}
	s.chunks[ci] = c
}

// At returns the i-th smallest id, 0 <= i < Len().
func (s *sortedIDs) At(i int) string {
	for _, c := range s.chunks {
		if i < len(c) {
			return c[i]
		}
		i -= len(c)
	}
	panic("sortedIDs.At: index out of range")
}

// After calls fn for the ids greater than after, in order, until fn returns
// false.
func (s *sortedIDs) After(after string, fn func(id string) bool) {
	ci := sort.Search(len(s.chunks), func(k int) bool {
		c := s.chunks[k]
		return c[len(c)-1] > after
	})
	for ; ci < len(s.chunks); ci++ {
		c := s.chunks[ci]
		pos := sort.Search(len(c), func(k int) bool { return c[k] > after })
		for _, id := range c[pos:] {
			if !fn(id) {
				return
			}
		}
	}
}
