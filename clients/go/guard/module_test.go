package guard_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's Go SDK program, built in a fresh module the way a service
// would import the SDK (issue 14: the snippet failed `go mod tidy` in a new
// module because the daemon's go.mod needed a replace). The module is not
// published, so the test module points at this checkout with a replace; the
// SDK's own go.mod must need none. The program must build, and neither it
// nor its go.sum may pull in Raft, bbolt or pgx.
func TestReadmeSnippetBuildsInFreshModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module (downloads from the module proxy when the cache is cold)")
	}
	sdk, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(sdk, "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippet := readmeSnippet(t, string(readme))

	sdkMod, err := os.ReadFile(filepath.Join(sdk, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sdkMod, []byte("replace ")) {
		t.Errorf("the SDK's go.mod has a replace directive, which a dependent's build ignores:\n%s", sdkMod)
	}

	dir := t.TempDir()
	gomod := "module example.com/service\n\ngo 1.26.0\n\n" +
		"require github.com/sessiond/sessiond/clients/go v0.0.0\n\n" +
		"replace github.com/sessiond/sessiond/clients/go => " + sdk + "\n"
	writeFile(t, filepath.Join(dir, "go.mod"), gomod)
	writeFile(t, filepath.Join(dir, "main.go"), snippet)

	goCmd(t, dir, "mod", "tidy")
	goCmd(t, dir, "build", "-o", os.DevNull, ".")
	deps := goCmd(t, dir, "list", "-deps", ".")
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/jackc/pgx", "github.com/sessiond/sessiond/store", "github.com/sessiond/sessiond/cluster"} {
		for _, p := range strings.Fields(deps) {
			if p == bad || strings.HasPrefix(p, bad+"/") {
				t.Errorf("the README program depends on %s", p)
			}
		}
		if bytes.Contains(sum, []byte(bad+" ")) || bytes.Contains(sum, []byte(bad+"/")) {
			t.Errorf("the README program's go.sum names %s:\n%s", bad, sum)
		}
	}
	if !strings.Contains(deps, "github.com/sessiond/sessiond/clients/go/guard") {
		t.Errorf("go list -deps does not list the guard package:\n%s", deps)
	}
}

// readmeSnippet returns the Go block after the go-sdk-snippet marker.
func readmeSnippet(t *testing.T, readme string) string {
	t.Helper()
	const marker = "<!-- go-sdk-snippet"
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %s marker", marker)
	}
	rest := readme[i:]
	start := strings.Index(rest, "```go\n")
	if start < 0 {
		t.Fatal("README.md: no ```go block after the snippet marker")
	}
	rest = rest[start+len("```go\n"):]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		t.Fatal("README.md: the snippet's ```go block is not closed")
	}
	return rest[:end+1]
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goCmd runs the go command in dir, outside any workspace, with the module
// graph editable (GOFLAGS=-mod=mod) and the proxy reachable.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}
