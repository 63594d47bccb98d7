package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sessiond/sessiond"

// layoutRules says which of our packages a tree of the repository must not
// import, and why. Dependencies point one way: store <- cluster <- authsvc
// <- api <- cmd.
var layoutRules = []struct {
	dir    string
	forbid []string
	why    string
}{
	{"store", []string{"cluster", "authsvc", "api", "cmd", "github.com/jackc/pgx"},
		"the state machine imports nothing of ours but generated proto types"},
	{"cluster", []string{"store", "authsvc", "api", "cmd"},
		"cluster replicates opaque commands and knows nothing of sessions"},
	{"authsvc", []string{"api", "cmd", "cluster"},
		"authsvc talks to the cluster through interfaces it declares"},
	{"api", []string{"cmd"}, "handlers never depend on the wiring"},
	{"clients/go", []string{"store", "cluster", "authsvc", "api", "cmd", "internal", "proto/gen",
		"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/jackc/pgx"},
		"the Go SDK is its own module: services import it without the daemon's dependencies"},
}

// TestLayout enforces the dependency direction and a package doc comment on
// every package of the module.
func TestLayout(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]bool{} // package dir -> has a doc comment
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if !strings.HasPrefix(dir, "proto/gen") && !strings.HasPrefix(dir, "clients/go/gen") {
			docs[dir] = docs[dir] || f.Doc != nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range layoutRules {
				if dir != r.dir && !strings.HasPrefix(dir, r.dir+"/") {
					continue
				}
				for _, bad := range r.forbid {
					target := bad
					if !strings.Contains(bad, ".") {
						target = module + "/" + bad
					}
					if p == target || strings.HasPrefix(p, target+"/") {
						t.Errorf("%s imports %s: %s", rel, p, r.why)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range layoutRules {
		seen := false
		for dir := range docs {
			seen = seen || dir == r.dir || strings.HasPrefix(dir, r.dir+"/")
		}
		if !seen {
			t.Errorf("no Go files found under %s: the layout check looked in the wrong place", r.dir)
		}
	}
	for dir, ok := range docs {
		if !ok {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}
