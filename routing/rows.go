package routing

import (
	"iter"
	"slices"
)

// Rows is a table's backends in table order, held in chunks that never
// change once published: a snapshot that follows an edit copies the chunk
// the edit falls in and shares every other with the snapshot before, so an
// edit costs about a chunk, not the table.
type Rows struct {
	chunks [][]*Backend
	ends   []int // ends[i]: how many rows chunks[:i+1] hold
}

// rowsChunk is how many rows a chunk is cut to: an edit copies one, and a
// search reads a pointer per chunk.
const rowsChunk = 512

// RowsOf holds list, which must not change afterwards, as Rows.
func RowsOf(list []*Backend) Rows {
	var r Rows
	for len(list) > 0 {
		n := min(len(list), rowsChunk)
		r.chunks = append(r.chunks, list[:n:n])
		list = list[n:]
	}
	r.index()
	return r
}

func (r *Rows) index() {
	r.ends = make([]int, len(r.chunks))
	n := 0
	for i, c := range r.chunks {
		n += len(c)
		r.ends[i] = n
	}
}

// Len is the number of rows.
func (r Rows) Len() int {
	if len(r.ends) == 0 {
		return 0
	}
	return r.ends[len(r.ends)-1]
}

// All yields the rows in table order.
func (r Rows) All() iter.Seq[*Backend] {
	return func(yield func(*Backend) bool) {
		for _, c := range r.chunks {
			for _, b := range c {
				if !yield(b) {
					return
				}
			}
		}
	}
}

// Slice returns the rows as one new slice.
func (r Rows) Slice() []*Backend {
	out := make([]*Backend, 0, r.Len())
	for _, c := range r.chunks {
		out = append(out, c...)
	}
	return out
}

// At returns the row at position i.
func (r Rows) At(i int) *Backend {
	c, _ := slices.BinarySearch(r.ends, i+1)
	start := 0
	if c > 0 {
		start = r.ends[c-1]
	}
	return r.chunks[c][i-start]
}

// Search returns the position of the first row for which cmp is not
// negative (rows ordered by cmp), and whether cmp is zero there.
func (r Rows) Search(cmp func(*Backend) int) (int, bool) {
	c, _ := slices.BinarySearchFunc(r.chunks, 0, func(ch []*Backend, _ int) int {
		if cmp(ch[len(ch)-1]) < 0 {
			return -1
		}
		return 1
	})
	if c == len(r.chunks) {
		return r.Len(), false
	}
	i, found := slices.BinarySearchFunc(r.chunks[c], 0, func(b *Backend, _ int) int { return cmp(b) })
	start := 0
	if c > 0 {
		start = r.ends[c-1]
	}
	return start + i, found
}

// Edit returns the rows without those at the positions in drop and with
// adds[k] placed before the row at position places[k] (Len for the end).
// Both position lists are ascending and count rows of r; the chunks no
// position falls in are shared with r.
func (r Rows) Edit(drop []int, adds []*Backend, places []int) Rows {
	if len(drop) == 0 && len(adds) == 0 {
		return r
	}
	if len(r.chunks) == 0 {
		return RowsOf(slices.Clone(adds))
	}
	out := Rows{chunks: make([][]*Backend, 0, len(r.chunks)+1)}
	d, a, start := 0, 0, 0
	for c, ch := range r.chunks {
		end := r.ends[c]
		last := c == len(r.chunks)-1
		// An add placed at a chunk's end goes into the next chunk, or
		// into this one when it is the last.
		mine := func(p int) bool { return p < end || (last && p == end) }
		if !(d < len(drop) && drop[d] < end) && !(a < len(places) && mine(places[a])) {
			out.chunks = append(out.chunks, ch)
			start = end
			continue
		}
		nc := make([]*Backend, 0, len(ch)+4)
		for i := start; ; i++ {
			for a < len(places) && places[a] == i && mine(i) {
				nc = append(nc, adds[a])
				a++
			}
			if i == end {
				break
			}
			if d < len(drop) && drop[d] == i {
				d++
				continue
			}
			nc = append(nc, ch[i-start])
		}
		for len(nc) > 2*rowsChunk {
			out.chunks = append(out.chunks, nc[:rowsChunk:rowsChunk])
			nc = nc[rowsChunk:]
		}
		if len(nc) > 0 {
			out.chunks = append(out.chunks, nc)
		}
		start = end
	}
	out.index()
	return out
}
