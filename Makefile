# hepto — see README.md. Every target works on a fresh Debian 12 machine as root
# once `make deps` has installed the packages it needs.
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Kubernetes' own version variables: left unset they read v0.0.0-master,
# which kubectl and the components' version checks refuse.
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2 }' go.mod)
K8S_MINOR   := $(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
	-X $(p).gitCommit=$(COMMIT) -X $(p).gitTreeState=clean -X $(p).buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ))
# no_btrfs: Kubernetes' btrfs support needs cgo and its headers.
K8S_TAGS := no_btrfs
# hepto's own build adds grpcnotrace (gRPC without golang.org/x/net/trace,
# whose pages render with html/template) and builds a few modules with
# small patches (third_party/patches): together they let the linker drop
# the exported methods that nothing calls, about 25 MB (docs/architecture.md).
HEPTO_TAGS := $(K8S_TAGS),grpcnotrace
HEPTO_GOFLAGS = -trimpath -tags $(HEPTO_TAGS) -modfile $(CURDIR)/bin/patched/go.mod
# The fabric build of hepto (kubebin): no Kubernetes linked.
FABRIC_GOFLAGS = -trimpath -tags $(HEPTO_TAGS),fabric -modfile $(CURDIR)/bin/patched/go.mod
APT_PKGS := runc nftables iproute2 iptables iperf3 conntrack iputils-ping procps wireguard-tools bind9-dnsutils dnsperf prometheus coturn dpkg-dev gcc libc6-dev curl openssl

.PHONY: all build cross containerd install install-files deps test test-short fuzz bench bench-cni cni-ref coredns bench-dns bench-dns-k8s bench-nat bench-idle bench-netpol bench-publish bench-volumes bench-images ingress-tools bench-cp chaos demo lint clean conformance-local-volumes

all: build

# GOARCH=arm64 (Raspberry Pi) cross-compiles into bin/linux-arm64.
export GOOS := linux
export GOARCH ?= $(shell $(GO) env GOARCH)
CNI_REF := github.com/containernetworking/plugins/plugins
BIN := bin$(if $(filter-out $(shell $(GO) env GOHOSTARCH),$(GOARCH)),/linux-$(GOARCH))

build: containerd patched hepto
	CGO_ENABLED=0 $(GO) build $(HEPTO_GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/hepto-lab ./cmd/hepto-lab
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hepto-cni ./cmd/hepto-cni
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/portmap $(CNI_REF)/meta/portmap

# cross: hepto's own two programs for GOARCH (CI checks arm64, for
# Raspberry Pis); make build GOARCH=arm64 builds containerd and portmap
# too.
cross: patched hepto
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hepto-cni ./cmd/hepto-cni

# hepto: built twice (kubebin). $(BIN)/hepto-full links Kubernetes;
# $(BIN)/hepto, the one installed, runs the fabric and the commands and
# carries hepto-full, compressed, for the nodes that run Kubernetes.
.PHONY: hepto
hepto: patched
	CGO_ENABLED=0 $(GO) build $(HEPTO_GOFLAGS) -ldflags '$(LDFLAGS) $(K8S_LDFLAGS)' -o $(BIN)/hepto-full ./cmd/hepto
	GOARCH=$(shell $(GO) env GOHOSTARCH) $(GO) run $(HEPTO_GOFLAGS) ./kubebin/pack $(BIN)/hepto-full kubebin
	CGO_ENABLED=0 $(GO) build $(FABRIC_GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/hepto ./cmd/hepto

# patch-modules copies each module named by $(3)/MODULE@VERSION.patch
# (MODULE with _ for /) from the module cache into $(2), applies the
# patch, and writes $(2)/go.mod: $(1)/go.mod with these copies as
# replacements, for go build -modfile. A module whose version in go.mod
# differs from its patch's stops the build (make the patch again). The
# module is downloaded first (an empty module cache has no directory to
# copy). Done again only when go.mod, go.sum, a patch or the checkout's
# path changed ($(2)/.stamp: the copies are named by absolute path).
define patch-modules
	@stamp=$$( (echo $(CURDIR); cat $(1)/go.mod $(1)/go.sum $(3)/*.patch) | sha256sum); \
	[ "$$(cat $(2)/.stamp 2>/dev/null)" = "$$stamp" ] && exit 0; \
	rm -rf $(2) && mkdir -p $(2) && cp $(1)/go.mod $(1)/go.sum $(2)/; \
	for p in $(3)/*.patch; do \
		f=$${p##*/}; f=$${f%.patch}; mod=$$(echo $${f%@*} | tr _ /); ver=$${f##*@}; \
		(cd $(1) && $(GO) mod download $$mod) || exit 1; \
		set -- $$(cd $(1) && $(GO) list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}} {{.Dir}}' $$mod) || exit 1; \
		[ -n "$$2" ] || { echo "$$mod: not in the module cache after go mod download" >&2; exit 1; }; \
		[ "$$1" = "$$ver" ] || { echo "$$p: $$mod is $$1 in $(1)/go.mod, the patch is for $$ver" >&2; exit 1; }; \
		cp -r "$$2" $(2)/$$f && chmod -R u+w $(2)/$$f && \
		git apply --unsafe-paths --directory=$(2)/$$f $$p && \
		$(GO) mod edit -replace=$$mod=$(CURDIR)/$(2)/$$f $(2)/go.mod || exit 1; \
	done; \
	echo "$$stamp" > $(2)/.stamp
endef

# patched: the modules hepto links (third_party/patches), in bin/patched.
.PHONY: patched patched-containerd
patched:
	$(call patch-modules,.,bin/patched,third_party/patches)

# patched-containerd: containerd's (third_party/containerd/patches), in
# bin/patched-containerd.
patched-containerd:
	$(call patch-modules,third_party/containerd,bin/patched-containerd,third_party/containerd/patches)

# containerd builds containerd, its runc shim and ctr from the release
# pinned in third_party/containerd; hepto runs them as child processes and
# finds them beside itself. grpcnotrace: without golang.org/x/net/trace
# (and its html/template) the linker drops unused methods, and the shim is
# 10.1 MB instead of 14.3. The shim's patch (third_party/containerd/patches)
# lets hepto run one shim per node instead of one per pod.
CONTAINERD_VERSION := $(shell cd third_party/containerd && $(GO) list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
CONTAINERD_CMDS := containerd containerd-shim-runc-v2 ctr
containerd: patched-containerd
	cd third_party/containerd && CGO_ENABLED=0 $(GO) build -trimpath -modfile $(CURDIR)/bin/patched-containerd/go.mod -tags 'no_btrfs no_devmapper no_zfs grpcnotrace' \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)' \
		-o $(CURDIR)/$(BIN)/ $(addprefix github.com/containerd/containerd/v2/cmd/,$(CONTAINERD_CMDS))

# cni-ref builds the reference CNI plugins (containernetworking/plugins, a
# tool dependency in go.mod) that the CNI benchmark compares hepto-cni with.
# build takes portmap from there: Kubernetes nodes chain it after hepto-cni
# for pods' hostPorts.
cni-ref:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/cni-ref/ $(CNI_REF)/main/bridge $(CNI_REF)/ipam/host-local $(CNI_REF)/meta/portmap

# k8s-ref builds the components as upstream ships them, from the module
# versions hepto embeds (k8s.io/kubernetes, go.etcd.io/etcd/server/v3 in
# go.mod), for the Kubernetes benchmark; one at a time (each link is heavy).
.PHONY: k8s-ref bench-k8s bench-k8s-build
K8S_REF := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
k8s-ref:
	@for c in $(K8S_REF); do echo "build bin/k8s-ref/$$c"; \
		CGO_ENABLED=0 $(GO) build -trimpath -tags $(K8S_TAGS) -ldflags '-s -w $(K8S_LDFLAGS)' -o bin/k8s-ref/$$c k8s.io/kubernetes/cmd/$$c || exit 1; done
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/k8s-ref/etcd go.etcd.io/etcd/server/v3

# install puts a node in place, as k3s users are used to: the binaries in
# $(PREFIX)/lib/hepto (hepto finds containerd, hepto-cni and portmap beside itself),
# $(PREFIX)/bin/hepto, the systemd unit and /etc/default/hepto (kept if
# present), and runc. Then: hepto init … (anchor) or HEPTO_ARGS="--join
# TOKEN" in /etc/default/hepto, and systemctl enable --now hepto.
PREFIX  ?= /usr/local
LIBDIR  := $(PREFIX)/lib/hepto
install: build install-files
	@dpkg -s runc >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc nftables iptables)
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null; then systemctl daemon-reload; fi

install-files:
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/default
	install -m 0755 $(BIN)/hepto $(BIN)/hepto-cni $(BIN)/portmap $(addprefix $(BIN)/,$(CONTAINERD_CMDS)) $(DESTDIR)$(LIBDIR)/
	ln -sfn $(LIBDIR)/hepto $(DESTDIR)$(PREFIX)/bin/hepto
	sed 's|@BINDIR@|$(PREFIX)/bin|' dist/systemd/hepto.service > $(DESTDIR)/etc/systemd/system/hepto.service
	test -e $(DESTDIR)/etc/default/hepto || install -m 0600 dist/systemd/hepto.default $(DESTDIR)/etc/default/hepto

# deps installs the Debian packages the lab, the tests and the benchmarks use.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

# test runs every test; the integration tests need root (they skip otherwise).
# The tests build against the patched modules hepto ships (HEPTO_GOFLAGS),
# so they share the build's compiled packages. The test binaries are built
# first, as many at a time as there are cores (-run '^$$' runs none of their
# tests), then run one package at a time (go test -p 1 also builds one at a
# time): the lab's timings should not share two cores. Then the packages
# that run without root again, under the race detector (-short skips the
# tunnel's namespace tests).
RACE_PKGS := ./supervisor ./backup ./membership ./control ./state ./key ./localapi ./dns/... ./cni/netconf ./cni/ipam ./metrics ./nat ./tunnel ./mesh ./anchor ./podnet ./k8s/nodecert ./k8s/containerd ./k8s/images ./k8s/component ./k8s/apiendpoint ./k8s/publish
test: deps build conformance-build ingress-tools
	# The fabric build links no Kubernetes (docs/architecture.md, "Two builds in one file").
	$(GO) vet $(FABRIC_GOFLAGS) ./cmd/hepto ./daemon ./kubebin
	test -z "$$($(GO) list -deps $(FABRIC_GOFLAGS) ./cmd/hepto | grep '^k8s\.io/')"
	HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -run '^$$' ./... >/dev/null
	HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni HEPTO_E2E_IMAGES=$(CURDIR)/bin/e2e-images $(GO) test $(HEPTO_GOFLAGS) -p 1 -count=1 -timeout 35m ./...
	$(GO) test $(HEPTO_GOFLAGS) -race -short -p 1 -count=1 -timeout 10m $(RACE_PKGS)
	# The kubelet's patched volume manager against its own upstream tests.
	$(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 10m k8s.io/kubernetes/pkg/kubelet/volumemanager/...

test-short: patched
	$(GO) test $(HEPTO_GOFLAGS) -short -count=1 ./...

# fuzz runs each fuzz target for a short while.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./membership -run '^$$' -fuzz FuzzParseToken -fuzztime $(FUZZTIME)
	$(GO) test ./membership -run '^$$' -fuzz FuzzOpenMembership -fuzztime $(FUZZTIME)
	$(GO) test ./membership -run '^$$' -fuzz FuzzOpenSet -fuzztime $(FUZZTIME)
	$(GO) test ./backup -run '^$$' -fuzz FuzzOpen -fuzztime $(FUZZTIME)
	$(GO) test $(HEPTO_GOFLAGS) ./k8s/publish/ports -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test $(HEPTO_GOFLAGS) ./k8s -run '^$$' -fuzz FuzzParseVolumeSpace -fuzztime $(FUZZTIME)
	$(GO) test ./control -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./control -run '^$$' -fuzz FuzzSignature -fuzztime $(FUZZTIME)
	$(GO) test ./cni/netconf -run '^$$' -fuzz FuzzParseConf -fuzztime $(FUZZTIME)
	$(GO) test ./tunnel -run '^$$' -fuzz FuzzClassify -fuzztime $(FUZZTIME)
	$(GO) test ./dns -run '^$$' -fuzz FuzzServe -fuzztime $(FUZZTIME)
	$(GO) test ./k8s/nodecert -run '^$$' -fuzz FuzzIssue -fuzztime $(FUZZTIME)

# bench compares hepto's tunnel with stock wireguard-go and the raw veth
# (iperf3 in the lab); the table goes to stdout.
bench: deps build
	./bin/hepto-lab bench

# bench-cni compares hepto-cni's ADD and DEL latency with the reference
# bridge and host-local plugins; the table goes to stdout.
bench-cni: deps build cni-ref
	./bin/hepto-lab cni-bench --cni-path bin:bin/cni-ref

# ingress-tools builds the ingress recipe's Caddy and the lab's ACME
# server, Pebble, from the module proxy (their own modules), into bin/.
CADDY := github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9
PEBBLE := github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3
ingress-tools:
	@test -x bin/caddy -a -x bin/pebble || { \
	GOBIN=$(CURDIR)/bin GOFLAGS= GOARCH=$(shell $(GO) env GOHOSTARCH) CGO_ENABLED=0 $(GO) install -trimpath -ldflags '-s -w' $(PEBBLE) && \
	GOBIN=$(CURDIR)/bin GOFLAGS= GOARCH=$(shell $(GO) env GOHOSTARCH) CGO_ENABLED=0 $(GO) install -trimpath -ldflags '-s -w' $(CADDY); }

# coredns builds the CoreDNS the DNS benchmark compares with, from the
# module proxy (its own module, not this one's requirements).
COREDNS := github.com/coredns/coredns@v1.15.0
coredns:
	GOBIN=$(CURDIR)/bin GOFLAGS= GOARCH=$(shell $(GO) env GOHOSTARCH) CGO_ENABLED=0 $(GO) install $(COREDNS)

# bench-dns compares hepto's DNS server with CoreDNS under dnsperf: node
# names and cached forwarded names; then the Kubernetes part (bench-dns-k8s).
bench-dns: deps build coredns
	./bin/hepto-lab dns-bench --coredns bin/coredns
	./bin/hepto-lab dns-bench --kubernetes --coredns bin/coredns

# bench-dns-k8s: an anchor and a home with Kubernetes, 1,000 Services with
# 5,000 endpoints; dnsperf from a pod against hepto's DNS and CoreDNS's
# kubernetes plugin on the same apiserver; the time for kube-proxy to
# program the Services and for every node to answer a new one; memory.
# Upstream kube-proxy runs beside when bin/k8s-ref/kube-proxy exists
# (make k8s-ref).
bench-dns-k8s: deps build coredns
	./bin/hepto-lab dns-bench --kubernetes --coredns bin/coredns

# bench-nat times paths between homes per NAT pairing, recovery after a
# renumbering, direct and relayed throughput, and idle traffic per peer.
bench-nat: deps build
	./bin/hepto-lab nat-bench

# bench-netpol: what NetworkPolicy costs a connection (k8s/netpol): TCP
# throughput and connection rate with 100 policies against none.
bench-netpol: deps patched
	HEPTO_BENCH_NETPOL=1 $(GO) test $(HEPTO_GOFLAGS) -count=1 -run 'TestBench' -v ./k8s/netpol

# bench-images: a 100 MB image deployed on every node of a 5-node,
# 3-home cluster, with the nodes sharing images and without: the bytes
# across each home's uplink and the registry's.
bench-images: deps build
	HEPTO_BENCH_IMAGES=1 HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 30m -run 'TestBenchImages' -v ./e2e

# bench-volumes: a local volume's sequential I/O against its disk written
# directly, and the time from a claim to its volume.
bench-volumes: deps build
	HEPTO_BENCH_VOLUMES=1 HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 20m -run 'TestBenchVolumes' -v ./e2e

# bench-publish: a Service published through the anchor against the same
# pod reached from inside the overlay: request rate and latency, a large
# download, and the anchor's cost of 1,000 open connections.
bench-publish: deps build
	HEPTO_BENCH_PUBLISH=1 HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 20m -run 'TestBenchPublished' -v ./e2e

# bench-idle: CPU and memory of idle daemons with 10 peers each.
bench-idle: deps build
	./bin/hepto-lab idle-bench

# chaos runs the fault tests' long versions: every anchor down for 10
# minutes, a control-plane home cut off for 5, the etcd recipe's home cut
# off for 5 then lost (about 40 minutes).
chaos: deps build
	HEPTO_CHAOS=1 HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 80m -run 'TestWithoutAnchor|TestControlPlaneHomeCut|TestEtcdRecipe' -v ./e2e

# bench-cp: a control-plane home's idle overlay traffic, three
# control-plane nodes, hepto's timings next to upstream's.
bench-cp: deps build
	HEPTO_BENCH_CP=1 HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_CNI_BIN=$(CURDIR)/bin/hepto-cni $(GO) test $(HEPTO_GOFLAGS) -count=1 -timeout 30m -run 'TestIdleCP' -v ./e2e

# bench-k8s: hepto's Kubernetes against the same components run as
# upstream runs them (k8s-ref, containerd), on the same lab nodes: memory,
# time to Ready, pod start, idle CPU, and the binary's size.
bench-k8s: deps build k8s-ref
	./bin/hepto-lab k8s-bench

# bench-k8s-build: hepto's size, stripped, built for amd64 and arm64, then
# the time and peak memory (GNU time's maximum RSS: its largest process,
# the linker) of a cold amd64 build: an empty build cache, the module
# cache as it is. Heavy: about a quarter of an hour on 2 cores.
bench-k8s-build: patched
	@test -x /usr/bin/time || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOARCH=$$arch $(GO) build $(HEPTO_GOFLAGS) -ldflags '$(LDFLAGS) $(K8S_LDFLAGS)' -o $$tmp/hepto-$$arch ./cmd/hepto || exit 1; \
		echo "hepto linux/$$arch, stripped: $$(stat -c %s $$tmp/hepto-$$arch) bytes"; \
	done; \
	mkdir $$tmp/cache; \
	GOCACHE=$$tmp/cache CGO_ENABLED=0 /usr/bin/time -f 'cold build of hepto (amd64): %e s wall, %U s user, %S s system, peak RSS %M KB' \
		$(GO) build $(HEPTO_GOFLAGS) -ldflags '$(LDFLAGS) $(K8S_LDFLAGS)' -o $$tmp/hepto-cold ./cmd/hepto

# demo: an anchor and three homes behind NAT boxes, Kubernetes on all four
# with one pod on each, until Ctrl-C.
# conformance runs Kubernetes' end-to-end suite (e2e.test at hepto's
# Kubernetes version, from third_party/conformance) against a lab cluster
# of an anchor and two homes behind NATs, one symmetric: the [Conformance]
# tests of sig-network, sig-node, sig-apps and sig-api-machinery, without
# [Serial], [Disruptive] and [Slow] (conformance-full conformance-ha runs those too). The
# images the suite asks for are rebuilt from Debian packages and Go sources
# (no registry is reachable). Results: docs/conformance.md. Heavy: e2e.test
# is a Kubernetes-sized build, and the run takes the better part of an hour.
.PHONY: conformance conformance-full conformance-ha conformance-storage conformance-netpol conformance-build
CONFORMANCE := bin/conformance
conformance-build: build e2e-images
	cd third_party/conformance && CGO_ENABLED=0 $(GO) test -c -trimpath -tags $(K8S_TAGS) -ldflags '-s -w $(K8S_LDFLAGS)' \
		-o $(CURDIR)/$(CONFORMANCE)/e2e.test k8s.io/kubernetes/test/e2e
	cd third_party/conformance && CGO_ENABLED=0 $(GO) build -trimpath -o $(CURDIR)/$(CONFORMANCE)/ginkgo github.com/onsi/ginkgo/v2/ginkgo
	cd third_party/conformance && CGO_ENABLED=0 $(GO) build -trimpath -tags $(K8S_TAGS) -ldflags '-s -w $(K8S_LDFLAGS)' \
		-o $(CURDIR)/$(CONFORMANCE)/kubectl k8s.io/kubernetes/cmd/kubectl

conformance: deps conformance-build
	./bin/hepto-lab conformance --doc docs/conformance.md

conformance-full: deps conformance-build
	./bin/hepto-lab conformance --skip '' --doc docs/conformance.md

# conformance-ha: make conformance on a cluster whose control plane is
# three nodes (the anchor and both homes, one behind the symmetric NAT).
conformance-ha: deps conformance-build
	./bin/hepto-lab conformance --control-planes 3 --kind 'make conformance-ha' --doc docs/conformance.md

# conformance-storage: the sig-storage conformance tests (ConfigMap, Secret,
# projected, downward API and emptyDir volumes), for the kubelet's patched
# volume manager.
conformance-storage: deps conformance-build
	./bin/hepto-lab conformance --focus '\[sig-storage\].*\[Conformance\]' --kind 'make conformance-storage' --doc docs/conformance.md

# conformance-local-volumes: the storage suite's tests of dynamically
# provisioned file-system volumes (provisioning, volume I/O, subPath,
# several pods, volume mode, expansion, capacity) against the
# default class local (k8s/provision.go), described in
# docs/conformance/local-volumes.yaml. Left out: a test that looks for the
# kubelet's directory at /var/lib/kubelet (docs/conformance.md).
conformance-local-volumes: deps conformance-build
	./bin/hepto-lab conformance --focus 'External.Storage \[Driver: local.hepto.net\].*\[Testpattern: Dynamic PV \((default fs|filesystem volmode)\)(\(allowExpansion\))?\]' \
		--skip '\[Disruptive\]|\[Serial\]|\[Slow\]|should not mount / map unused volumes' --suite-arg=--storage.testdriver=$(CURDIR)/docs/conformance/local-volumes.yaml \
		--kind 'make conformance-local-volumes' --doc docs/conformance.md

# conformance-netpol: the suite's NetworkPolicy tests ([sig-network] Netpol),
# for hepto's own enforcement (k8s/netpol). SCTP's are left out: the lab's
# kernel has no SCTP.
conformance-netpol: deps conformance-build
	./bin/hepto-lab conformance --focus '\[sig-network\] Netpol' --skip '\[Feature:SCTPConnectivity\]' --kind 'make conformance-netpol' --doc docs/conformance.md

demo: deps build ingress-tools
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/web ./lab/web
	./bin/hepto-lab demo

# e2e-images: the images of Kubernetes' conformance tests, rebuilt from Go
# source and Debian packages under their upstream names (lab/e2eimages), as
# OCI archives in bin/e2e-images (see docs/conformance.md). Heavy the first
# time (agnhost, sample-apiserver, etcd are linked); the cache in
# bin/e2e-images/.cache makes later runs short.
.PHONY: e2e-images
# GOARCH=arm64 makes arm64 images (with hepto-lab built for this machine).
e2e-images: patched
	CGO_ENABLED=0 GOARCH=$(shell $(GO) env GOHOSTARCH) $(GO) build $(HEPTO_GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/hepto-lab ./cmd/hepto-lab
	./bin/hepto-lab e2e-images --out $(BIN)/e2e-images --arch $(GOARCH)

# test-e2e-images: the images imported into a containerd of hepto's
# configuration and run (lab/e2eimages, TestImagesRun; root).
.PHONY: test-e2e-images
test-e2e-images: containerd e2e-images
	HEPTO_BIN=$(CURDIR)/bin/hepto HEPTO_E2E_IMAGES=$(CURDIR)/bin/e2e-images $(GO) test -count=1 -run TestImagesRun -v ./lab/e2eimages

lint: patched
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(HEPTO_GOFLAGS) ./...

clean:
	rm -rf bin
