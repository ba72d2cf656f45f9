package images

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// treeEntries lists the layer entries of the directory tree at root,
// less the paths that files replace. Regular files are read when the
// layer is written (entry.src). Files that are hard links of each other
// become one regular file, the first by name, and hard links to it.
func treeEntries(root string, files []File) ([]entry, error) {
	replaced := make(map[string]File, len(files))
	for _, f := range files {
		replaced[strings.TrimPrefix(f.Path, "/")] = f
	}
	type inode struct{ dev, ino uint64 }
	var (
		entries []entry
		inodes  = map[string]inode{} // by path, of files with several links
		types   = map[string]fs.FileMode{}
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
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		types[rel] = info.Mode().Type()
		if f, ok := replaced[rel]; ok {
			if info.IsDir() && !f.Mode.IsDir() {
				return fmt.Errorf("file /%s would replace a directory of tree %s", rel, root)
			}
			return nil // a directory's contents stay
		}
		e := entry{path: rel, mode: info.Mode() &^ fs.ModeType}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner", p)
		}
		e.uid, e.gid = int(st.Uid), int(st.Gid)
		switch info.Mode().Type() {
		case 0:
			e.typ, e.src, e.size = tar.TypeReg, p, info.Size()
			if st.Nlink > 1 {
				inodes[rel] = inode{uint64(st.Dev), uint64(st.Ino)}
			}
		case fs.ModeDir:
			e.typ = tar.TypeDir
		case fs.ModeSymlink:
			e.typ, e.mode = tar.TypeSymlink, 0o777
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %v is neither a regular file, a directory nor a symbolic link", p, info.Mode().Type())
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A file given outside the tree must not be put under what the tree
	// has as a regular file or a link.
	for _, f := range files {
		for dir := path.Dir(strings.TrimPrefix(f.Path, "/")); dir != "."; dir = path.Dir(dir) {
			if t, ok := types[dir]; ok && t != fs.ModeDir {
				if _, mine := replaced[dir]; !mine {
					return nil, fmt.Errorf("file %s is under /%s, which is not a directory in tree %s", f.Path, dir, root)
				}
			}
		}
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
