package geo

// codeTable interns every two-letter code "AA".."ZZ", indexed by
// (first-'A')*26 + (second-'A'). Country returns these strings, so no lookup
// allocates one. It holds all 676 combinations rather than only the assigned
// ISO 3166-1 codes because databases also use user-assigned ones (XK for
// Kosovo) and the set of assigned codes changes over time.
var codeTable = func() (t [26 * 26]string) {
	// One backing string for the whole table: one allocation at start-up.
	b := make([]byte, 0, 2*len(t))
	for i := range t {
		b = append(b, byte('A'+i/26), byte('A'+i%26))
	}
	all := string(b)
	for i := range t {
		t[i] = all[2*i : 2*i+2]
	}
	return t
}()

// internCode returns the interned upper-case form of a two-letter code, or ""
// when b is not two ASCII letters (a corrupt or unexpected value is treated
// as unknown rather than passed on to routing).
func internCode(b []byte) string {
	if len(b) != 2 {
		return ""
	}
	hi, ok1 := letterIndex(b[0])
	lo, ok2 := letterIndex(b[1])
	if !ok1 || !ok2 {
		return ""
	}
	return codeTable[hi*26+lo]
}

func letterIndex(c byte) (int, bool) {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A'), true
	case 'a' <= c && c <= 'z':
		return int(c - 'a'), true
	}
	return 0, false
}
