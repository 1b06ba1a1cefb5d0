// Command layerzip writes a Lambda layer zip whose bytes depend only on its inputs: entries in the
// order given, a fixed modification time, fixed modes and Go's deterministic deflate. The same
// files give the same zip on every machine with the same Go release.
//
// Usage: go run ./tools/layerzip -o layer.zip zip/path=local/file[:mode] ...
package main

import (
	"archive/zip"
	"compress/flate"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// modTime is the zip format's earliest date: nothing in the archive depends on when it was built.
var modTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

type entry struct {
	name, source string
	mode         os.FileMode
}

func parseEntry(arg string) (entry, error) {
	name, rest, ok := strings.Cut(arg, "=")
	if !ok || name == "" || rest == "" {
		return entry{}, fmt.Errorf("entry %q: want zip/path=local/file[:mode]", arg)
	}
	e := entry{name: name, source: rest, mode: 0o644}
	if i := strings.LastIndex(rest, ":"); i > 0 {
		mode, err := strconv.ParseUint(rest[i+1:], 8, 32)
		if err != nil {
			return entry{}, fmt.Errorf("entry %q: mode %q is not octal", arg, rest[i+1:])
		}
		e.source, e.mode = rest[:i], os.FileMode(mode)
	}
	return e, nil
}

func write(out string, entries []entry) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	dirs := map[string]bool{}
	for _, e := range entries {
		// Directory entries first, so unzip creates them with a known mode.
		for dir := filepath.Dir(e.name); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
			h := &zip.FileHeader{Name: dir + "/", Method: zip.Store, Modified: modTime}
			h.SetMode(os.ModeDir | 0o755)
			if _, err := zw.CreateHeader(h); err != nil {
				return err
			}
		}
		src, err := os.Open(e.source)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modTime}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("add %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func main() {
	out := flag.String("o", "", "zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: layerzip -o layer.zip zip/path=local/file[:mode] ...")
		os.Exit(2)
	}
	var entries []entry
	for _, arg := range flag.Args() {
		e, err := parseEntry(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "layerzip:", err)
			os.Exit(2)
		}
		entries = append(entries, e)
	}
	if err := write(*out, entries); err != nil {
		fmt.Fprintln(os.Stderr, "layerzip:", err)
		os.Exit(1)
	}
}
