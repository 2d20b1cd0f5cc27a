package popctl

import (
	"fmt"
	"os/exec"
	"strings"
)

// SQL runs the sqlite3 CLI on the POP's table file, as an operator would,
// and returns its output without the trailing newline. It waits up to 5 s
// for the write lock, since the POP (or its replicator) may hold it.
func (p *POP) SQL(stmt string) (string, error) {
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", p.DB, stmt).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sqlite3 %s: %v: %s", stmt, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
