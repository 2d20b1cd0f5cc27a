package edgeroute_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// An operator lists a large table a page at a time, through the admin API
// and `caddy edgeroute backends --limit`: the pages come in ID order, not
// table order, each after the ID the one before ended at, and together
// list every backend once; a bad limit is refused, naming it.
func TestBackendsListedAPageAtATime(t *testing.T) {
	p, _ := worldTable(t, false) // inserted us-1, fr-1, de-1, br-1
	p.sql(`INSERT INTO backends (id, app, wg_ip, port) VALUES ('aa-other', 'other', '127.0.0.1', 1)`)
	type page struct {
		Backends []struct{ ID string }
		Next     string
	}
	eventually(t, 2*time.Second, func() string {
		var whole page
		p.adminGet("/edgeroute/backends", &whole)
		if len(whole.Backends) != 5 || whole.Next != "" {
			return "the whole table is not yet the 5 backends"
		}
		return ""
	})
	want := []string{"aa-other", "br-1", "de-1", "fr-1", "us-1"}
	var got []string
	var ends []string
	after := ""
	for len(ends) <= len(want) {
		var v page
		path := "/edgeroute/backends?limit=2"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if code := p.adminGet(path, &v); code != 200 {
			t.Fatalf("GET %s: HTTP %d", path, code)
		}
		for _, b := range v.Backends {
			got = append(got, b.ID)
		}
		ends = append(ends, v.Next)
		if v.Next == "" {
			break
		}
		after = v.Next
	}
	if !slices.Equal(got, want) || !slices.Equal(ends, []string{"br-1", "fr-1", ""}) {
		t.Fatalf("pages of 2 listed %v, ending at %q; want %v", got, ends, want)
	}
	var mine page
	p.adminGet("/edgeroute/backends?app=myapp&limit=3&after=br-1", &mine)
	if len(mine.Backends) != 3 || mine.Backends[0].ID != "de-1" || mine.Backends[2].ID != "us-1" || mine.Next != "" {
		t.Fatalf("myapp after br-1: %+v", mine)
	}
	for _, bad := range []string{"0", "-1", "all"} {
		code, body, err := p.AdminDo("GET", "/edgeroute/backends?limit="+bad, "", "")
		if err != nil || code != 400 || !strings.Contains(string(body), "query parameter limit") {
			t.Errorf("limit=%s: HTTP %d %s %v", bad, code, body, err)
		}
	}
	out := runCaddy(t, "edgeroute", "backends", "--limit", "1", "--after", "aa-other", "--address", p.admin)
	if !regexpMatch(`(?m)^br-1 `, out) || strings.Contains(out, "de-1") || !strings.Contains(out, "more: --after br-1") {
		t.Fatalf("caddy edgeroute backends --limit 1 --after aa-other printed:\n%s", out)
	}
}
