package store

import "encoding/binary"

// decodeAhead reads the entries and rows the commit watch's thread wrote
// (commit_watch_ahead in commits_linux.h: native byte order, each list a
// count and its items). ok is false for a buffer that does not parse,
// which the follower then reads itself.
func decodeAhead(buf []byte) (entries []aheadEntry, rows []backendRow, ok bool) {
	d := aheadDecoder{buf: buf}
	n := d.u32()
	if n > uint32(len(buf)) {
		return nil, nil, false
	}
	entries = make([]aheadEntry, 0, n)
	for range n {
		table := d.u8()
		if int(table) >= len(aheadTables) {
			return nil, nil, false
		}
		entries = append(entries, aheadEntry{table: aheadTables[table], key: d.text()})
	}
	n = d.u32()
	if n > uint32(len(buf)) {
		return nil, nil, false
	}
	rows = make([]backendRow, 0, n)
	for range n {
		var r backendRow
		for _, v := range []*int64{&r.rowid, &r.port, &r.healthy, &r.weight, &r.soft, &r.hard, &r.del} {
			*v = d.i64()
		}
		for _, t := range []*string{&r.id, &r.app, &r.region, &r.country, &r.ip} {
			*t = d.text()
		}
		rows = append(rows, r)
	}
	return entries, rows, !d.short && len(d.buf) == 0
}

// aheadTables are the tables an entry read ahead can be of, by the number
// the thread writes.
var aheadTables = []string{"backends", "health"}

// aheadDecoder reads a buffer front to back; short is set, and zeros read,
// once it runs out.
type aheadDecoder struct {
	buf   []byte
	short bool
}

func (d *aheadDecoder) take(n int) []byte {
	if n > len(d.buf) {
		d.short, d.buf = true, nil
		return make([]byte, n)
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *aheadDecoder) u8() uint8   { return d.take(1)[0] }
func (d *aheadDecoder) u32() uint32 { return binary.NativeEndian.Uint32(d.take(4)) }
func (d *aheadDecoder) i64() int64  { return int64(binary.NativeEndian.Uint64(d.take(8))) }

func (d *aheadDecoder) text() string {
	n := d.u32()
	if uint64(n) > uint64(len(d.buf)) {
		d.short, d.buf = true, nil
		return ""
	}
	return string(d.take(int(n)))
}
