package e2eimages

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hepto-net/hepto/k8s/images"
)

// program builds the main package pkg of the module for the images'
// architecture (static, stripped) into the cache, once a run; the go
// command relinks only what changed.
func (b *builder) program(ctx context.Context, name, pkg, ldflags string) ([]byte, error) {
	if data, ok := b.progs[name]; ok {
		return data, nil
	}
	out := filepath.Join(b.o.Cache, "bin", b.o.Arch, name)
	b.logf("go build %s", pkg)
	cmd := exec.CommandContext(ctx, b.o.Go, "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", out, pkg)
	cmd.Dir = b.o.Module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.o.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	b.progs[name] = data
	return data, nil
}

// moduleFile reads a file of a module the programs' module requires
// (its version there), such as agnhost's test certificate.
func (b *builder) moduleFile(ctx context.Context, module, file string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.o.Go, "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = b.o.Module
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m %s: %w", module, err)
	}
	return os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), file))
}

// agnhost is the agnhost image, with files of test/images/NAME/html (the
// nautilus and kitten images) at the root and cmd instead of pause.
func (b *builder) agnhost(ctx context.Context, html []string, cmd []string) (images.Image, string, error) {
	t, err := b.rootfs(ctx, toolsFS)
	if err != nil {
		return images.Image{}, "", err
	}
	prog, err := b.program(ctx, "agnhost", kubernetesModule+"/test/images/agnhost", "-X main.Version=2.66.1")
	if err != nil {
		return images.Image{}, "", err
	}
	files := append(slices.Clone(commonDirs),
		images.File{Path: "/agnhost", Mode: 0o755, Data: prog},
		images.File{Path: "/agnhost-2", Mode: fs.ModeSymlink, Link: "agnhost"},
		dir("/uploads", 0o755),
		images.File{Path: "/usr/local/bin/iperf", Mode: fs.ModeSymlink, Link: "/usr/bin/iperf"},
		images.File{Path: "/home/user-defined-in-image", Mode: fs.ModeDir | 0o755, UID: 1000, GID: 1000},
	)
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		data, err := b.moduleFile(ctx, kubernetesModule, "test/images/agnhost/porter/"+f)
		if err != nil {
			return images.Image{}, "", err
		}
		files = append(files, images.File{Path: "/" + f, Mode: 0o644, Data: data})
	}
	users, err := addUsers(t.dir,
		[]string{"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh"},
		[]string{"user-defined-in-image:x:1000:", "group-defined-in-image:x:50000:user-defined-in-image"})
	if err != nil {
		return images.Image{}, "", err
	}
	files = append(files, users...)
	source := "agnhost 2.66.1 (Alpine 3.21 with bind-tools curl netcat-openbsd iproute2 iperf bash util-linux-misc socat): " +
		"/agnhost from " + kubernetesModule + " " + kubernetesVersion + " (test/images/agnhost), on Debian 12 packages " +
		packages(t, toolsFS) + " and busybox's applets where these have no command (wget); no /coredns, no /var/registry"
	if len(html) > 0 {
		which := strings.TrimSuffix(html[0], ".jpg")
		for _, f := range html {
			data, err := b.moduleFile(ctx, kubernetesModule, "test/images/"+which+"/html/"+f)
			if err != nil {
				return images.Image{}, "", err
			}
			files = append(files, images.File{Path: "/" + f, Mode: 0o644, Data: data})
		}
		source = which + " 1.8 (agnhost with test/images/" + which + "/html, test-webserver): the agnhost image here, with those files"
	}
	if cmd == nil {
		cmd = []string{"pause"}
	}
	// Upstream's are Alpine images, and the suite looks for "Alpine Linux"
	// in /etc/os-release (ImageVolume reads kitten's): this one says it is
	// Debian standing in for it.
	name := "agnhost"
	if len(html) > 0 {
		name = strings.TrimSuffix(html[0], ".jpg")
	}
	files = append(files, images.File{Path: "/etc/os-release", Mode: 0o644, Data: []byte(osRelease(name))})
	return images.Image{Tree: t.dir, Env: []string{pathEnv}, Entrypoint: []string{"/agnhost"}, Cmd: cmd, Files: files}, source, nil
}

// osRelease is /etc/os-release of a Debian 12 root standing in for the
// Alpine Linux one of upstream's image name.
func osRelease(name string) string {
	return `PRETTY_NAME="Debian GNU/Linux 12 (bookworm), standing in for Alpine Linux in a rebuild of ` + name + `"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`
}

// addUsers is the tree's /etc/passwd and /etc/group with lines added.
func addUsers(root string, passwd, group []string) ([]images.File, error) {
	var files []images.File
	for _, f := range []struct {
		name  string
		lines []string
	}{{"etc/passwd", passwd}, {"etc/group", group}} {
		data, err := os.ReadFile(filepath.Join(root, f.name))
		if err != nil {
			return nil, err
		}
		if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
			data = append(data, '\n')
		}
		data = append(data, strings.Join(f.lines, "\n")+"\n"...)
		files = append(files, images.File{Path: "/" + f.name, Mode: 0o644, Data: data})
	}
	return files, nil
}

// nginxConf serves /usr/share/nginx/html on port 80 as the upstream
// image's default server does, logs to the container's output, and runs
// its workers as nginx (uid 101, as upstream). The command line adds
// "daemon off;"; the entrypoint adds IPv6 where the kernel has it.
const nginxConf = `user nginx;
worker_processes auto;
pid /run/nginx.pid;
error_log /dev/stderr notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80;
        include /etc/nginx/listen-ipv6*.conf;
        server_name localhost;
        location / {
            root /usr/share/nginx/html;
            index index.html index.htm;
        }
        error_page 500 502 503 504 /50x.html;
        location = /50x.html {
            root /usr/share/nginx/html;
        }
    }
}
`

// nginxEntrypoint listens on IPv6 too where the pod has it, as the
// upstream image's entrypoint does (10-listen-on-ipv6-by-default.sh).
const nginxEntrypoint = `#!/bin/sh
set -e
if [ "$1" = nginx ] && [ -e /proc/net/if_inet6 ] && [ -w /etc/nginx ]; then
    echo 'listen [::]:80;' > /etc/nginx/listen-ipv6.conf
fi
exec "$@"
`

const nginxIndex = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working.</p>
</body>
</html>
`

const nginx50x = `<!DOCTYPE html>
<html>
<head>
<title>Error</title>
</head>
<body>
<h1>An error occurred.</h1>
</body>
</html>
`

func (b *builder) nginx(ctx context.Context) (images.Image, string, error) {
	t, err := b.rootfs(ctx, nginxFS)
	if err != nil {
		return images.Image{}, "", err
	}
	users, err := addUsers(t.dir, []string{"nginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin"}, []string{"nginx:x:101:"})
	if err != nil {
		return images.Image{}, "", err
	}
	files := append(slices.Clone(commonDirs), users...)
	files = append(files,
		images.File{Path: "/etc/nginx/nginx.conf", Mode: 0o644, Data: []byte(nginxConf)},
		images.File{Path: "/docker-entrypoint.sh", Mode: 0o755, Data: []byte(nginxEntrypoint)},
		images.File{Path: "/usr/share/nginx/html/index.html", Mode: 0o644, Data: []byte(nginxIndex)},
		images.File{Path: "/usr/share/nginx/html/50x.html", Mode: 0o644, Data: []byte(nginx50x)},
		dir("/var/lib/nginx", 0o755),
		dir("/var/log/nginx", 0o755),
		images.File{Path: "/var/log/nginx/access.log", Mode: fs.ModeSymlink, Link: "/dev/stdout"},
		images.File{Path: "/var/log/nginx/error.log", Mode: fs.ModeSymlink, Link: "/dev/stderr"},
		dir("/var/cache/nginx", 0o755),
	)
	return images.Image{
			Tree: t.dir, Env: []string{pathEnv},
			Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"},
			Files: files,
		},
		"nginx (nginx:1.27-alpine and 1.28-alpine): Debian 12's " + packages(t, nginxFS) +
			", serving /usr/share/nginx/html on port 80, workers as nginx (101), logs on the container's output, " +
			"busybox's applets where Debian's packages have no command", nil
}
