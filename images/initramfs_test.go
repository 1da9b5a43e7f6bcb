package images

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// The archive holds /init and /bin/hvsim byte for byte, executable, the
// mount points, and /dev/console as the character device 5:1.
func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	initBin, hvsimBin := filepath.Join(dir, "i"), filepath.Join(dir, "h")
	if err := os.WriteFile(initBin, []byte("\x7fELF init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hvsimBin, bytes.Repeat([]byte("hvsim"), 1000), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio")
	if err := WriteInitramfs(out, initBin, hvsimBin); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr, err := cpio.Newc.NewFileReader(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(rr)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	for name, want := range map[string][]byte{"init": []byte("\x7fELF init"), "bin/hvsim": bytes.Repeat([]byte("hvsim"), 1000)} {
		r, ok := got[name]
		if !ok {
			t.Fatalf("no %s in %v", name, names(recs))
		}
		data, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if !bytes.Equal(data, want) || r.Mode != cpio.S_IFREG|0o755 {
			t.Errorf("%s: %d bytes mode %o", name, len(data), r.Mode)
		}
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp"} {
		if r, ok := got[d]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("directory %s: %+v", d, r.Info)
		}
	}
	if r, ok := got["dev/console"]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFCHR || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console: %+v", r.Info)
	}
	if err := WriteInitramfs(out, filepath.Join(dir, "missing"), hvsimBin); err == nil {
		t.Error("a missing binary was accepted")
	}
}

func names(recs []cpio.Record) []string {
	var n []string
	for _, r := range recs {
		n = append(n, r.Name)
	}
	return n
}
