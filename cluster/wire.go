package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgeproxy/edgeproxy/store"
)

// Messages travel as memberlist user messages (encrypted and labelled by
// memberlist when a key and a cluster name are set). Layout:
//
//	'E' 'R' version type payload
//
// type msgChanges: uvarint segments, each: origin, from, to, changes,
// each change: table, pk, column, value, hlc, seq, cl. Strings are a uvarint
// length and bytes; a value is a tag (0 null, 1 integer, 2 real, 3 text,
// 4 blob) and its bytes.
//
// type msgSync: sender name, flags (1: reply with your own sync if you
// know less than me), uvarint entries of (site, version).
//
// Every length is checked against what is left of the message, so a
// garbage or truncated message is an error, never a panic or a huge
// allocation.

const (
	wireVersion = 1
	msgChanges  = 1
	msgSync     = 2
	msgLeave    = 3 // the sender is leaving on purpose: payload its name
	// msgDigest: sender name, flags (1: reply, 2: an acknowledgement of
	// a push, which asks nothing back), the digest of the
	// sender's vector (8 bytes). Anti-entropy's first word: a member whose
	// vector has the same digest lacks nothing, and no vector travels.
	msgDigest = 4
	// msgSyncDelta: a msgSync whose vector is given as the difference
	// from a vector the receiver announced earlier: sender name, flags,
	// the digest of that base (8 bytes), then the entries that differ
	// from it (a site at version 0 is one the sender lacks).
	msgSyncDelta = 5
	// msgRelay: the relaying node's name, then a msgChanges payload. A
	// bridge passes on what it merged from its other cluster; members
	// acknowledge the merge to it as they would to an origin.
	msgRelay = 6
	// msgFloor: sender name, kind (1: the floor of the sender's region,
	// from a bridge to the global cluster; 2: the floor of every region,
	// from a bridge to its region; 3 and 4: asks for a floor of kind 1 or
	// 2 of the sites named), uvarint entries of (site, version).
	msgFloor = 7
)

// floorMsg is a floor of tombstone collection passed on by a bridge
// (floor.go): per site, the lowest version every POP it covers holds.
type floorMsg struct {
	From string
	// Global: the floor of every region, sent into a region; otherwise
	// the floor of the sender's region, sent into the global cluster.
	Global bool
	// Ask: the sender asks for that floor of Vector's sites (the
	// versions are its own), for old tombstones it keeps.
	Ask    bool
	Vector store.Vector
}

func encodeFloor(m floorMsg) []byte {
	e := encoder{b: header(msgFloor)}
	e.str(m.From)
	kind := uint64(floorRegion)
	if m.Global {
		kind = floorGlobal
	}
	if m.Ask {
		kind += floorAsk
	}
	e.uv(kind)
	e.vector(m.Vector)
	return e.b
}

const (
	floorRegion = 1
	floorGlobal = 2
	floorAsk    = 2 // added to the kind asked for
)

// relayMsg is changes a bridge merged from its other cluster.
type relayMsg struct {
	From string
	Segs []store.Segment
}

// digestMsg announces the digest of the sender's vector.
type digestMsg struct {
	From      string
	WantReply bool
	// Ack: sent by a member that merged a push, to its origin, with the
	// member's vector after the merge.
	Ack    bool
	Digest uint64
}

func encodeDigest(m digestMsg) []byte {
	e := encoder{b: header(msgDigest)}
	e.str(m.From)
	f := flag(m.WantReply)
	if m.Ack {
		f |= 2
	}
	e.uv(f)
	e.b = binary.LittleEndian.AppendUint64(e.b, m.Digest)
	return e.b
}

func flag(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// encodeSyncDelta encodes m, whose vector is the difference from a
// vector the receiver announced, whose digest is baseDigest.
func encodeSyncDelta(m syncMsg, baseDigest uint64) []byte {
	e := encoder{b: header(msgSyncDelta)}
	e.str(m.From)
	m.Digests = true
	e.uv(syncFlags(m))
	e.b = binary.LittleEndian.AppendUint64(e.b, baseDigest)
	e.vector(m.Vector)
	return e.b
}

type leaveMsg string

func encodeLeave(name string) []byte {
	e := encoder{b: header(msgLeave)}
	e.str(name)
	return e.b
}

var errTruncated = errors.New("truncated message")

type syncMsg struct {
	From      string
	WantReply bool
	Vector    store.Vector
	// Base, when not zero, is the digest of a vector the receiver
	// announced: Vector then holds only the entries that differ from it.
	Base uint64
	// Digests tells that the sender understands msgDigest and
	// msgSyncDelta (flag 2). A node of an older release reads the flags
	// as "reply" only when they are exactly 1, so it is set only towards
	// members known to understand it.
	Digests bool
}

func syncFlags(m syncMsg) uint64 {
	f := flag(m.WantReply)
	if m.Digests {
		f |= 2
	}
	return f
}

type encoder struct{ b []byte }

func (e *encoder) uv(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) str(s string) { e.uv(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, 0)
	case int64:
		e.b = append(e.b, 1)
		e.b = binary.AppendVarint(e.b, x)
	case float64:
		e.b = append(e.b, 2)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(x))
	case string:
		e.b = append(e.b, 3)
		e.str(x)
	case []byte:
		e.b = append(e.b, 4)
		e.uv(uint64(len(x)))
		e.b = append(e.b, x...)
	default:
		panic(fmt.Sprintf("cluster: unsupported value type %T", v))
	}
}

func header(t byte) []byte { return []byte{'E', 'R', wireVersion, t} }

func encodeChanges(segs []store.Segment) []byte {
	e := encoder{b: header(msgChanges)}
	e.segments(segs)
	return e.b
}

func encodeRelay(from string, segs []store.Segment) []byte {
	e := encoder{b: header(msgRelay)}
	e.str(from)
	e.segments(segs)
	return e.b
}

func (e *encoder) segments(segs []store.Segment) {
	e.uv(uint64(len(segs)))
	for _, s := range segs {
		e.str(s.Origin)
		e.uv(s.From)
		e.uv(s.To)
		e.uv(uint64(len(s.Changes)))
		for _, c := range s.Changes {
			e.str(c.Table)
			e.str(c.PK)
			e.str(c.Column)
			e.value(c.Value)
			e.uv(c.HLC)
			e.uv(c.Seq)
			e.uv(c.CL)
		}
	}
}

func encodeSync(m syncMsg) []byte {
	e := encoder{b: header(msgSync)}
	e.str(m.From)
	e.uv(syncFlags(m))
	e.vector(m.Vector)
	return e.b
}

func (e *encoder) vector(v store.Vector) {
	e.uv(uint64(len(v)))
	for site, x := range v {
		e.str(site)
		e.uv(x)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that take at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uv()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = fmt.Errorf("count %d exceeds what the message can hold", n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uv()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errTruncated
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) value() any {
	if d.err != nil {
		return nil
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return nil
	}
	tag := d.b[0]
	d.b = d.b[1:]
	switch tag {
	case 0:
		return nil
	case 1:
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.err = errTruncated
			return nil
		}
		d.b = d.b[n:]
		return v
	case 2:
		if len(d.b) < 8 {
			d.err = errTruncated
			return nil
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		return v
	case 3:
		return d.str()
	case 4:
		return append([]byte{}, d.bytes()...)
	default:
		d.err = fmt.Errorf("unknown value tag %d", tag)
		return nil
	}
}

// decode parses a message: a []store.Segment, a relayMsg, a syncMsg, a
// digestMsg, a floorMsg or a leaveMsg.
func decode(b []byte) (any, error) {
	if len(b) < 4 || b[0] != 'E' || b[1] != 'R' {
		return nil, errors.New("not an edgeroute cluster message")
	}
	if b[2] != wireVersion {
		return nil, fmt.Errorf("wire version %d not understood (this build speaks %d)", b[2], wireVersion)
	}
	d := &decoder{b: b[4:]}
	switch b[3] {
	case msgChanges:
		segs := d.segments()
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return segs, d.err
	case msgRelay:
		m := relayMsg{From: d.str()}
		m.Segs = d.segments()
		if d.err == nil && m.From == "" {
			d.err = errors.New("relay without a sender")
		}
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return m, d.err
	case msgSync, msgSyncDelta:
		m := syncMsg{From: d.str()}
		f := d.uv()
		m.WantReply, m.Digests = f&1 != 0, f&2 != 0
		if b[3] == msgSyncDelta {
			m.Base = d.u64()
			if d.err == nil && m.Base == 0 {
				d.err = errors.New("delta from no base")
			}
		}
		m.Vector = d.vector()
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return m, d.err
	case msgFloor:
		m := floorMsg{From: d.str()}
		switch kind := d.uv(); {
		case d.err != nil:
		case kind >= floorRegion && kind <= floorGlobal+floorAsk:
			m.Ask = kind > floorGlobal
			m.Global = kind == floorGlobal || kind == floorGlobal+floorAsk
		default:
			d.err = fmt.Errorf("unknown floor kind %d", kind)
		}
		m.Vector = d.vector()
		if d.err == nil && m.From == "" {
			d.err = errors.New("floor without a sender")
		}
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return m, d.err
	case msgDigest:
		m := digestMsg{From: d.str()}
		f := d.uv()
		m.WantReply, m.Ack = f&1 != 0, f&2 != 0
		m.Digest = d.u64()
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return m, d.err
	case msgLeave:
		name := d.str()
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		return leaveMsg(name), d.err
	default:
		return nil, fmt.Errorf("unknown message type %d", b[3])
	}
}

func (d *decoder) vector() store.Vector {
	v := store.Vector{}
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		site := d.str()
		v[site] = d.uv()
	}
	return v
}

func (d *decoder) segments() []store.Segment {
	n := d.count(4)
	segs := make([]store.Segment, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		s := store.Segment{Origin: d.str(), From: d.uv(), To: d.uv()}
		m := d.count(7)
		s.Changes = make([]store.Change, 0, m)
		for j := 0; j < m && d.err == nil; j++ {
			c := store.Change{Table: d.str(), PK: d.str(), Column: d.str(), Value: d.value(), HLC: d.uv(), Seq: d.uv(), CL: d.uv(), Site: s.Origin}
			s.Changes = append(s.Changes, c)
		}
		if s.Origin == "" || s.To < s.From {
			d.err = fmt.Errorf("invalid segment (origin %q, from %d, to %d)", s.Origin, s.From, s.To)
		}
		segs = append(segs, s)
	}
	return segs
}
