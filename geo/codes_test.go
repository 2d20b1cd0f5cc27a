package geo

import (
	"testing"
	"unsafe"
)

func TestInternCode(t *testing.T) {
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			want := string([]rune{a, b})
			got := internCode([]byte(want))
			if got != want {
				t.Fatalf("internCode(%q) = %q", want, got)
			}
			// Interned: the same backing bytes every time, whatever the case.
			lower := internCode([]byte{byte(a + 32), byte(b + 32)})
			if lower != want || unsafe.StringData(lower) != unsafe.StringData(got) {
				t.Fatalf("internCode of lower-case %q is %q, not the interned %q", want, lower, want)
			}
		}
	}
	for _, bad := range []string{"", "F", "FRA", "F1", "1F", "F ", "@A", "[A", "`a", "{a", "\xc3\x89U"} {
		if got := internCode([]byte(bad)); got != "" {
			t.Errorf("internCode(%q) = %q, want \"\"", bad, got)
		}
	}
}
