package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the stdout and error sections of testdata/cli/*.txtar")

// TestCLI runs each testdata/cli/*.txtar case in-process: the archive's comment is the
// command line ($WORK is the folder the archive's files are written to, $CONNECTORS the
// shipped connectors); its "stdout" and "error" sections are the golden output, with
// those two paths shown as $WORK and $CONNECTORS.
func TestCLI(t *testing.T) {
	connectors, err := filepath.Abs(filepath.Join("..", "..", "connectors"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "cli", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			for _, f := range ar.Files {
				if f.Name == "stdout" || f.Name == "error" {
					continue
				}
				path := filepath.Join(work, filepath.FromSlash(f.Name))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			expand := strings.NewReplacer("$WORK", work, "$CONNECTORS", connectors)
			args := strings.Fields(expand.Replace(strings.TrimSpace(string(ar.Comment))))

			var stdout, stderr bytes.Buffer
			err = run(t.Context(), args, noEnv, &stdout, &stderr)
			hide := strings.NewReplacer(work, "$WORK", connectors, "$CONNECTORS")
			got := map[string]string{"stdout": hide.Replace(stdout.String())}
			if err != nil {
				got["error"] = hide.Replace(err.Error()) + "\n"
			}

			if *update {
				for i := range ar.Files {
					if v, ok := got[ar.Files[i].Name]; ok || ar.Files[i].Name == "error" {
						ar.Files[i].Data = []byte(v)
					}
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, f := range ar.Files {
				if want, ok := map[string]bool{"stdout": true, "error": true}[f.Name]; ok && want {
					if got[f.Name] != string(f.Data) {
						t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s\n--- stderr\n%s",
							f.Name, got[f.Name], f.Data, stderr.String())
					}
				}
			}
		})
	}
}

func noEnv(string) string { return "" }

func TestRunExitKinds(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantUsage bool // exit 2
		wantErr   bool // exit 1
		wantOut   string
	}{
		{name: "no arguments", args: nil, wantUsage: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantUsage: true},
		{name: "help", args: []string{"help"}, wantOut: "Usage:"},
		{name: "check without a directory", args: []string{"check"}, wantUsage: true},
		{name: "check with two directories", args: []string{"check", "a", "b"}, wantUsage: true},
		{name: "check an unknown flag", args: []string{"check", "--nope", "a"}, wantUsage: true},
		{name: "check a missing directory", args: []string{"check", filepath.Join(t.TempDir(), "missing")}, wantErr: true},
		{name: "check -h", args: []string{"check", "-h"}},
		{name: "run without a webhook", args: []string{"run", "--body", "x"}, wantUsage: true},
		{name: "run a directory that is no webhook", args: []string{"run", "../../connectors/example"}, wantUsage: true},
		{name: "run a bad header", args: []string{"run", "../../connectors/example/global-webhooks/webhook-key", "--header", "nocolon"}, wantUsage: true},
		{name: "run a missing body file", args: []string{"run", "../../connectors/example/global-webhooks/webhook-key", "--body", filepath.Join(t.TempDir(), "none.json")}, wantErr: true},
		{name: "run an unknown webhook", args: []string{"run", "../../connectors/example/global-webhooks/nope"}, wantErr: true},
		{name: "serve is not here yet", args: []string{"serve"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, noEnv, &stdout, &stderr)
			var ue *usageError
			isUsage := errors.As(err, &ue)
			switch {
			case tt.wantUsage && !isUsage:
				t.Errorf("got %v, want a usage error", err)
			case tt.wantErr && (err == nil || isUsage):
				t.Errorf("got %v, want a plain error", err)
			case !tt.wantUsage && !tt.wantErr && err != nil:
				t.Errorf("got %v, want no error", err)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.wantOut)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"version"}, noEnv, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(stdout.String(), "\n")
	if first != "switchboard dev" {
		t.Errorf("first line: got %q, want %q", first, "switchboard dev")
	}
}
