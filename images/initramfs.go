package images

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// Packages built into the image, relative to the module root.
const (
	initPkg  = "./images/cmd/hvguest-init"
	hvsimPkg = "./tools/hvsim"
)

// ErrBuild wraps failures to build the image.
var ErrBuild = errors.New("images: build")

// BuildBinaries compiles /init and /bin/hvsim for the image into dir: static
// (CGO_ENABLED=0), linux/amd64, GOAMD64=v1 (QEMU's default CPU model has no
// v2+ instructions). moduleRoot is the directory holding go.mod. It returns
// the two paths.
func BuildBinaries(moduleRoot, dir string) (initBin, hvsimBin string, err error) {
	initBin, hvsimBin = filepath.Join(dir, "init"), filepath.Join(dir, "hvsim")
	for _, b := range []struct{ pkg, out string }{{initPkg, initBin}, {hvsimPkg, hvsimBin}} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", b.out, b.pkg)
		cmd.Dir = moduleRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("%w: go build %s: %v\n%s", ErrBuild, b.pkg, err, out)
		}
	}
	return initBin, hvsimBin, nil
}

// WriteInitramfs writes a newc cpio archive to out holding /init (initBin),
// /bin/hvsim (hvsimBin), the mount points and /dev/console (the kernel
// opens it for init's stdio before devtmpfs is mounted).
func WriteInitramfs(out, initBin, hvsimBin string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	bw := bufio.NewWriter(f)
	rw := cpio.Newc.Writer(bw)
	recs := []cpio.Record{
		cpio.Directory("bin", 0o755), cpio.Directory("dev", 0o755), cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555), cpio.Directory("tmp", 0o1777),
		cpio.CharDev("dev/console", 0o600, 5, 1), cpio.CharDev("dev/null", 0o666, 1, 3),
	}
	for _, b := range []struct{ src, name string }{{initBin, "init"}, {hvsimBin, "bin/hvsim"}} {
		data, err := os.ReadFile(b.src)
		if err != nil {
			f.Close()
			return fmt.Errorf("%w: %v", ErrBuild, err)
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: b.name, Mode: cpio.S_IFREG | 0o755}))
	}
	cpio.MakeAllReproducible(recs)
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		f.Close()
		return fmt.Errorf("%w: cpio: %v", ErrBuild, err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		f.Close()
		return fmt.Errorf("%w: cpio: %v", ErrBuild, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	return f.Close()
}
