package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The opener child: the test binary run again with openerEnv set opens the
// file named there, as a second Caddy (or CoreDNS, with openerReadOnly)
// would, at the moment its parent writes a line to its stdin.
const (
	openerEnv      = "EDGEPROXY_STORE_OPENER"
	openerReadOnly = "EDGEPROXY_STORE_OPENER_RO"
	openerID       = "EDGEPROXY_STORE_OPENER_ID"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(openerEnv); path != "" {
		os.Exit(runOpener(path, os.Getenv(openerReadOnly) != "", os.Getenv(openerID)))
	}
	os.Exit(m.Run())
}

// runOpener prints "ready", waits for the go, opens the file, writes (a
// registration) or reads (a snapshot), and prints what it did: "migrated"
// or "found", then "ok".
func runOpener(path string, readOnly bool, id string) int {
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "no go:", err)
		return 2
	}
	ctx := context.Background()
	s, err := Open(ctx, path, Options{ReadOnly: readOnly})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	defer s.Close()
	if s.migrated {
		fmt.Println("migrated")
	} else {
		fmt.Println("found")
	}
	if readOnly {
		tbl, _, err := s.Snapshot(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "snapshot:", err)
			return 1
		}
		if tbl.Backend("v1-a") == nil {
			fmt.Fprintln(os.Stderr, "snapshot lacks the v1 row")
			return 1
		}
	} else {
		if _, err := s.Register(ctx, Registration{ID: id, App: "myapp", Region: "eu", IP: "10.0.0.1", Port: 80, Weight: 2}, time.Minute, time.Now()); err != nil {
			fmt.Fprintln(os.Stderr, "register:", err)
			return 1
		}
		if _, err := s.Heartbeat(ctx, id, time.Minute, time.Now()); err != nil {
			fmt.Fprintln(os.Stderr, "heartbeat:", err)
			return 1
		}
	}
	fmt.Println("ok")
	return 0
}

type opener struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr strings.Builder
}

func startOpener(t *testing.T, path string, readOnly bool, id string) *opener {
	t.Helper()
	o := &opener{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	o.cmd.Env = append(os.Environ(), openerEnv+"="+path, openerID+"="+id)
	if readOnly {
		o.cmd.Env = append(o.cmd.Env, openerReadOnly+"=1")
	}
	var err error
	if o.stdin, err = o.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := o.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	o.out = bufio.NewReader(stdout)
	o.cmd.Stderr = &o.stderr
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.cmd.Process.Kill(); o.cmd.Wait() })
	if line, err := o.out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("opener did not get ready: %q %v", line, err)
	}
	return o
}

// finish waits for the opener and returns its report lines.
func (o *opener) finish() ([]string, error) {
	rest, _ := io.ReadAll(o.out)
	err := o.cmd.Wait()
	lines := strings.Fields(string(rest))
	if err != nil {
		return lines, fmt.Errorf("%v: %s", err, strings.TrimSpace(o.stderr.String()))
	}
	return lines, nil
}

// openTogether starts one opener per mode on path and lets them go at the
// same instant: both processes are up and waiting, and one write to each
// stdin releases them.
func openTogether(t *testing.T, path string, readOnly ...bool) [][]string {
	t.Helper()
	ops := make([]*opener, len(readOnly))
	for i, ro := range readOnly {
		ops[i] = startOpener(t, path, ro, fmt.Sprint("b", i))
	}
	for _, o := range ops {
		o.stdin.Write([]byte("go\n"))
	}
	out := make([][]string, len(ops))
	for i, o := range ops {
		lines, err := o.finish()
		if err != nil {
			t.Fatalf("opener %d (read-only %v) failed: %v (said %v)", i, readOnly[i], err, lines)
		}
		if len(lines) != 2 || lines[1] != "ok" {
			t.Fatalf("opener %d: %v", i, lines)
		}
		out[i] = lines
	}
	return out
}

func newV1File(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, path, v1SchemaNoCountry+`INSERT INTO backends (id, app, region, wg_ip, port, healthy, weight, soft_limit, hard_limit)
		VALUES ('v1-a','myapp','sa','10.50.1.1',8080,1,1,100,200), ('v1-b','myapp','eu','10.50.3.1',8080,1,1,100,200);`)
	return path
}

// Two proxies started together on one fresh v1 routing.db (an overlapping
// restart, blue/green) both open it: one migrates, the other waits for the
// lock and finds the work done, and both write.
func TestTwoProcessesOpenOneV1FileAtOnce(t *testing.T) {
	for round := range 25 {
		path := newV1File(t)
		out := openTogether(t, path, false, false)
		if n := countMigrated(out); n != 1 {
			t.Fatalf("round %d: %d of 2 openers migrated the file: %v", round, n, out)
		}
		if v := sqlite(t, path, "PRAGMA user_version"); v != fmt.Sprint(SchemaVersion) {
			t.Fatalf("round %d: user_version %s", round, v)
		}
		if got := sqlite(t, path, "SELECT group_concat(id) FROM (SELECT id FROM backends ORDER BY id)"); got != "b0,b1,v1-a,v1-b" {
			t.Fatalf("round %d: rows %q", round, got)
		}
		// The v1 rows were captured for replication once, not twice.
		if got := sqlite(t, path, "SELECT count(*) FROM crdt_clock WHERE col = '' AND pk IN ('[\"v1-a\"]', '[\"v1-b\"]')"); got != "2" {
			t.Fatalf("round %d: v1 row sentinels %s", round, got)
		}
	}
}

// A read-only reader (the DNS server) started with the proxy on a fresh v1
// file reads it, whether before or after the migration.
func TestReaderBesideMigratingWriter(t *testing.T) {
	for round := range 25 {
		path := newV1File(t)
		out := openTogether(t, path, false, true)
		if out[0][0] != "migrated" || out[1][0] != "found" {
			t.Fatalf("round %d: %v", round, out)
		}
	}
}

// A v1 edgeProxy still writing the file (the sqlite3 CLI, in a loop) does
// not stop two new proxies and a reader from opening and migrating it, and
// its own writes never fail either.
func TestOpenBesideV1Writer(t *testing.T) {
	for round := range 10 {
		path := newV1File(t)
		w := startCLIWriter(t, path)
		time.Sleep(20 * time.Millisecond)
		out := openTogether(t, path, false, false, true)
		if n := countMigrated(out); n != 1 {
			t.Fatalf("round %d: %d openers migrated the file: %v", round, n, out)
		}
		n := w.stop(t)
		if n == 0 {
			t.Fatalf("round %d: the v1 writer wrote nothing", round)
		}
		if got := sqlite(t, path, "SELECT weight FROM backends WHERE id = 'v1-a'"); got != fmt.Sprint(n%50) {
			t.Fatalf("round %d: v1 writer's last write (weight %d) not in the file: %s", round, n%50, got)
		}
	}
}

func countMigrated(out [][]string) int {
	n := 0
	for _, lines := range out {
		if lines[0] == "migrated" {
			n++
		}
	}
	return n
}

// cliWriter is the sqlite3 CLI updating a v1 row in a loop, as a v1 proxy
// still running on the file would: one transaction per statement, the next
// 2 ms after the last one finished, with a busy timeout as v1's driver
// sets one, stopping at the first error (-bail).
type cliWriter struct {
	cmd    *exec.Cmd
	stderr strings.Builder
	stopc  chan struct{}
	done   chan int // the number of statements run
}

func startCLIWriter(t *testing.T, path string) *cliWriter {
	t.Helper()
	w := &cliWriter{cmd: exec.Command("sqlite3", "-bail", "-cmd", ".timeout 5000", path),
		stopc: make(chan struct{}), done: make(chan int, 1)}
	stdin, err := w.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	go func() {
		n := 0
		defer func() { stdin.Close(); w.done <- n }()
		out := bufio.NewReader(stdout)
		for {
			select {
			case <-w.stopc:
				return
			default:
			}
			// The statement, then a marker printed once it has run.
			if _, err := fmt.Fprintf(stdin, "UPDATE backends SET weight = %d WHERE id = 'v1-a';\n.print done\n", (n+1)%50); err != nil {
				return
			}
			if line, err := out.ReadString('\n'); err != nil || line != "done\n" {
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

// stop ends the loop and returns how many statements ran. It fails the
// test if the CLI reported an error.
func (w *cliWriter) stop(t *testing.T) int {
	t.Helper()
	close(w.stopc)
	n := <-w.done
	if err := w.cmd.Wait(); err != nil || w.stderr.Len() > 0 {
		t.Fatalf("the v1 writer (sqlite3 CLI) failed after %d statements: %v: %s", n, err, w.stderr.String())
	}
	return n
}
