package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// treeEntries lists the layer entries of the directory tree at root.
// Regular files are read when the layer is written (entry.src). Files
// that are hard links of each other become one regular file, the first
// by name, and hard links to it.
func treeEntries(root string) ([]entry, error) {
	type inode struct{ dev, ino uint64 }
	var (
		entries []entry
		inodes  = map[string]inode{} // by path, of files with several links
	)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			if !d.IsDir() {
				return fmt.Errorf("tree %s is not a directory", root)
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		e, st, err := lstatEntry(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if e.typ == tar.TypeReg && st.Nlink > 1 {
			inodes[e.path] = inode{uint64(st.Dev), uint64(st.Ino)}
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Hard links, in the order of the layer.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name(), b.name()) })
	first := map[inode]string{}
	for i, e := range entries {
		ino, ok := inodes[e.path]
		if !ok {
			continue
		}
		if target, ok := first[ino]; ok {
			entries[i] = entry{path: e.path, typ: tar.TypeLink, mode: e.mode, uid: e.uid, gid: e.gid, link: target}
			continue
		}
		first[ino] = e.path
	}
	return entries, nil
}

// lstatEntry is the layer entry, at rel, of the file at p.
func lstatEntry(p, rel string) (entry, *syscall.Stat_t, error) {
	info, err := os.Lstat(p)
	if err != nil {
		return entry{}, nil, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return entry{}, nil, fmt.Errorf("%s: no owner", p)
	}
	e := entry{path: rel, mode: info.Mode() &^ fs.ModeType, uid: int(st.Uid), gid: int(st.Gid)}
	switch info.Mode().Type() {
	case 0:
		e.typ, e.src, e.size = tar.TypeReg, p, info.Size()
	case fs.ModeDir:
		e.typ = tar.TypeDir
	case fs.ModeSymlink:
		e.typ, e.mode = tar.TypeSymlink, 0o777
		if e.link, err = os.Readlink(p); err != nil {
			return entry{}, nil, err
		}
	default:
		return entry{}, nil, fmt.Errorf("%s: %v is neither a regular file, a directory nor a symbolic link", p, info.Mode().Type())
	}
	return e, st, nil
}

// treeEntry is the entry of the tree's directory rel, if the tree has
// one there.
func treeEntry(root, rel string) (entry, bool, error) {
	e, _, err := lstatEntry(filepath.Join(root, filepath.FromSlash(rel)), rel)
	if errors.Is(err, fs.ErrNotExist) {
		return entry{}, false, nil
	}
	if err != nil || e.typ != tar.TypeDir {
		return entry{}, false, err
	}
	return e, true, nil
}

// checkOverTree refuses files that the tree cannot take on top: a file
// (not a directory) where the tree has a directory, which would hide
// what it holds, and a file under what the tree has as a regular file or
// a link, unless files replace that with a directory.
func checkOverTree(root string, files []File) error {
	if fi, err := os.Stat(root); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("tree %s is not a directory", root)
	}
	dirs := map[string]bool{}
	for _, f := range files {
		if f.Mode.IsDir() {
			dirs[f.Path] = true
		}
	}
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(root, f.Path))
		if err == nil && fi.IsDir() && !f.Mode.IsDir() {
			return fmt.Errorf("file %s would replace a directory of tree %s", f.Path, root)
		}
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			fi, err := os.Lstat(filepath.Join(root, dir))
			if err == nil && !fi.IsDir() && !dirs[dir] {
				return fmt.Errorf("file %s is under %s, which is not a directory in tree %s", f.Path, dir, root)
			}
		}
	}
	return nil
}
