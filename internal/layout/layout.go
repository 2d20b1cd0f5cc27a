// Package layout checks the house rules of the repository's imports: core
// packages import neither Caddy nor CoreDNS, nor any plugin; a plugin never
// imports another. Plugins and builds are where Caddy and CoreDNS belong.
package layout

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Module is the module path of the repository.
const Module = "github.com/edgeproxy/edgeproxy"

// serverImports are the import paths only plugins and builds may use.
var serverImports = []string{
	"github.com/caddyserver/caddy",
	"github.com/coredns/coredns",
	"github.com/coredns/caddy",
	"github.com/mholt/caddy-l4",
}

// Violation is one import that breaks a rule.
type Violation struct {
	File   string
	Import string
	Rule   string
}

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.File, v.Import, v.Rule) }

// Check reads every Go file under root (a checkout of the module) and
// returns the imports that break the rules.
func Check(root string) ([]Violation, error) {
	var out []Violation
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		top, plugin := place(rel)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if v, bad := judge(rel, top, plugin, p); bad {
				out = append(out, v)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].File+out[i].Import < out[j].File+out[j].Import })
	return out, err
}

// place returns the top-level directory of a file and, under plugins/, the
// plugin it belongs to.
func place(rel string) (top, plugin string) {
	parts := strings.Split(rel, "/")
	top = parts[0]
	if top == "plugins" && len(parts) > 2 {
		plugin = parts[1]
	}
	return top, plugin
}

func judge(file, top, plugin, imp string) (Violation, bool) {
	serverOK := top == "plugins" || top == "builds"
	if !serverOK {
		for _, s := range serverImports {
			if imp == s || strings.HasPrefix(imp, s+"/") {
				return Violation{file, imp, "a core package imports neither Caddy nor CoreDNS; move the adapter into a plugin"}, true
			}
		}
	}
	pluginPrefix := Module + "/plugins/"
	if !strings.HasPrefix(imp, pluginPrefix) {
		return Violation{}, false
	}
	target := strings.SplitN(strings.TrimPrefix(imp, pluginPrefix), "/", 2)[0]
	switch {
	case top == "builds":
		return Violation{}, false
	case top != "plugins":
		return Violation{file, imp, "core packages never import a plugin; define an interface in the core instead"}, true
	case target != plugin:
		return Violation{file, imp, "a plugin never imports another plugin; find it through an interface in the core (see pop.POP)"}, true
	}
	return Violation{}, false
}
