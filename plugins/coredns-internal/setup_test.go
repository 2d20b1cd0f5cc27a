package internal

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		input string
		keys  []string
		want  string // config fields, or the error's text
	}{
		{"internal {\n db /x.db\n}", []string{"internal."}, "[internal.] /x.db  5  []"},
		{"internal {\n db /x.db\n geoip /c.mmdb\n ttl 10\n region SA\n fallthrough\n}", []string{"internal."}, "[internal.] /x.db /c.mmdb 10 sa [.]"},
		{"internal a.example B.example. {\n db /x.db\n fallthrough a.example\n}", []string{"internal."}, "[a.example. b.example.] /x.db  5  [a.example.]"},
		{"internal {\n db /x.db\n ttl 0\n}", []string{"internal."}, "[internal.] /x.db  0  []"},

		{"internal", []string{"internal."}, "db is required"},
		{"internal {\n}", []string{"internal."}, "db is required"},
		{"internal {\n db\n}", []string{"internal."}, "db takes exactly one argument"},
		{"internal {\n db a b\n}", []string{"internal."}, "db takes exactly one argument"},
		{"internal {\n db /x.db\n ttl -1\n}", []string{"internal."}, "ttl must be a number of seconds in [0, 3600]"},
		{"internal {\n db /x.db\n ttl 3601\n}", []string{"internal."}, "ttl must be"},
		{"internal {\n db /x.db\n ttl ten\n}", []string{"internal."}, "ttl must be"},
		{"internal {\n db /x.db\n region\n}", []string{"internal."}, "region takes exactly one argument"},
		{"internal {\n db /x.db\n colour blue\n}", []string{"internal."}, `unknown property "colour"`},
		{"internal {\n db /x.db\n}\ninternal {\n db /y.db\n}", []string{"internal."}, "this plugin can only be used once per Server Block"},
	} {
		ctl := caddy.NewTestController("dns", c.input)
		ctl.ServerBlockKeys = c.keys
		cfg, err := parse(ctl)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.Join([]string{strings.Join([]string{"[" + strings.Join(cfg.zones, " ") + "]", cfg.db, cfg.geoip}, " "),
				strconv.Itoa(int(cfg.ttl)), cfg.region, "[" + strings.Join(cfg.fall.Zones, " ") + "]"}, " ")
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%q:\n got %s\nwant %s", c.input, got, c.want)
		}
	}
}

// A db that is missing or not SQLite stops the server at startup, with a
// message naming the file; so does a bad GeoIP database.
func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database\n", 200)), 0o644)
	good := filepath.Join(dir, "routing.db")
	writeTable(t, good, fixture)
	for _, c := range []struct {
		name, block string
		want        []string
	}{
		{"missing db", "internal {\n db " + filepath.Join(dir, "missing.db") + "\n}", []string{"missing.db", "no such file"}},
		{"not SQLite", "internal {\n db " + garbage + "\n}", []string{"garbage.db", "not a SQLite database"}},
		{"directory", "internal {\n db " + dir + "\n}", []string{dir, "is a directory"}},
		{"missing geoip", "internal {\n db " + good + "\n geoip " + filepath.Join(dir, "nope.mmdb") + "\n}", []string{"nope.mmdb"}},
		{"geoip not mmdb", "internal {\n db " + good + "\n geoip " + garbage + "\n}", []string{"garbage.db", "not a MaxMind DB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctl := caddy.NewTestController("dns", c.block)
			ctl.ServerBlockKeys = []string{"internal."}
			err := setup(ctl)
			if err == nil {
				t.Fatal("setup succeeded")
			}
			for _, w := range append(c.want, "plugin/internal") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A v1 routing.db that the proxy has not migrated yet (no pops or health
// tables, no country column) is served read-only, as it is.
func TestServesUnmigratedV1File(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	sqlite(t, db, `CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, wg_ip TEXT, port INTEGER,
		healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);
		INSERT INTO backends VALUES ('sa-node-1','myapp','sa','10.50.1.1',8080,1,1,100,200,0);`)
	before, _ := os.ReadFile(db)
	ctl := caddy.NewTestController("dns", "internal {\n db "+db+"\n}")
	ctl.ServerBlockKeys = []string{"internal."}
	cfg, err := parse(ctl)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newInternal(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer in.stop()
	resp, _, _ := serve(t, in, query("myapp.internal.", 1, ""), "")
	if resp == nil || len(resp.Answer) != 1 || !strings.Contains(resp.Answer[0].String(), "10.50.1.1") {
		t.Fatalf("v1 file: %v", resp)
	}
	if after, _ := os.ReadFile(db); string(after) != string(before) {
		t.Fatal("the read-only plugin changed the file")
	}
}
