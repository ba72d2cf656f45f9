// Command etcdmember is the replicated store of docs/recipes/etcd.md: an
// etcd member of a StatefulSet, one per home, that joins its cluster by
// itself, and joins it again as a new member when its data was lost (its
// home never came back, and its claim was given up). The lab's tests also
// use it to write and read keys.
//
//	etcdmember serve                 (env POD_NAME, SERVICE, NAMESPACE, REPLICAS, DATA)
//	etcdmember write ENDPOINTS PREFIX   one key every 100 ms; "ack KEY" for each acknowledged
//	etcdmember keys ENDPOINTS PREFIX    the keys under PREFIX, one a line (a linearizable read)
//	etcdmember local ENDPOINT PREFIX    the same, read from that member alone (serializable)
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	log.SetFlags(0)
	arg := func(i int) string {
		if len(os.Args) <= i {
			log.Fatal("usage: etcdmember serve | write ENDPOINTS PREFIX | keys ENDPOINTS PREFIX | local ENDPOINT PREFIX")
		}
		return os.Args[i]
	}
	var err error
	switch arg(1) {
	case "serve":
		err = serve()
	case "write":
		err = write(strings.Split(arg(2), ","), arg(3))
	case "keys":
		err = keys(strings.Split(arg(2), ","), arg(3), false)
	case "local":
		err = keys([]string{arg(2)}, arg(3), true)
	default:
		err = fmt.Errorf("unknown command %s", arg(1))
	}
	if err != nil {
		log.Fatal(err)
	}
}

// member is the StatefulSet's member i.
type member struct{ name, peer, client string }

func members() ([]member, string, error) {
	self, svc, ns := os.Getenv("POD_NAME"), os.Getenv("SERVICE"), os.Getenv("NAMESPACE")
	n, err := strconv.Atoi(os.Getenv("REPLICAS"))
	if self == "" || svc == "" || ns == "" || err != nil || n < 1 {
		return nil, "", errors.New("serve needs POD_NAME, SERVICE, NAMESPACE and REPLICAS")
	}
	base := strings.TrimRight(self, "0123456789")
	var out []member
	for i := range n {
		name := base + strconv.Itoa(i)
		host := fmt.Sprintf("%s.%s.%s.svc.cluster.local", name, svc, ns)
		out = append(out, member{name, "http://" + host + ":2380", "http://" + host + ":2379"})
	}
	return out, self, nil
}

func serve() error {
	ms, self, err := members()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ms, func(m member) bool { return m.name == self })
	if i < 0 {
		return fmt.Errorf("%s is not one of the %d members", self, len(ms))
	}
	me := ms[i]
	dir := filepath.Join(cmp.Or(os.Getenv("DATA"), "/data"), "etcd")
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = me.name, dir
	cfg.LogLevel = "warn"
	cfg.ListenPeerUrls = []url.URL{mustURL("http://0.0.0.0:2380")}
	cfg.ListenClientUrls = []url.URL{mustURL("http://0.0.0.0:2379")}
	cfg.AdvertisePeerUrls = []url.URL{mustURL(me.peer)}
	cfg.AdvertiseClientUrls = []url.URL{mustURL(me.client)}
	cfg.InitialClusterToken = os.Getenv("SERVICE")
	var initial []string
	for _, m := range ms {
		initial = append(initial, m.name+"="+m.peer)
	}
	cfg.InitialCluster, cfg.ClusterState = strings.Join(initial, ","), embed.ClusterStateFlagNew
	if _, err := os.Stat(filepath.Join(dir, "member")); err == nil {
		log.Printf("%s: starting from its data", me.name)
	} else if cluster, err := join(ms, me); err == nil {
		cfg.InitialCluster, cfg.ClusterState = cluster, embed.ClusterStateFlagExisting
	} else {
		log.Printf("%s: no running cluster (%v): bootstrapping with %s", me.name, err, cfg.InitialCluster)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
		log.Printf("%s: ready", me.name)
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}

// join asks the running cluster, if any, to take this member in: a member
// that lost its data is removed, then added again as new; a member of the
// bootstrap that never started starts as it is listed.
func join(ms []member, me member) (string, error) {
	var others []string
	for _, m := range ms {
		if m != me {
			others = append(others, m.client)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: others, DialTimeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range list.Members {
		if !slices.Contains(m.PeerURLs, me.peer) {
			continue
		}
		if m.Name == "" {
			log.Printf("%s: listed, never started: joining", me.name)
			return clusterString(list.Members, m.ID, me.name), nil
		}
		log.Printf("%s: its data is lost: replacing member %x", me.name, m.ID)
		if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
			return "", fmt.Errorf("remove the lost member: %w", err)
		}
	}
	add, err := cli.MemberAdd(ctx, []string{me.peer})
	if err != nil {
		return "", fmt.Errorf("add this member: %w", err)
	}
	log.Printf("%s: added as member %x", me.name, add.Member.ID)
	return clusterString(add.Members, add.Member.ID, me.name), nil
}

func clusterString(ms []*etcdserverpb.Member, self uint64, name string) string {
	var out []string
	for _, m := range ms {
		n := m.Name
		if m.ID == self {
			n = name
		}
		for _, u := range m.PeerURLs {
			out = append(out, n+"="+u)
		}
	}
	return strings.Join(out, ",")
}

// write puts one key every 100 ms and says which were acknowledged. It
// holds a client per member and stays with the one that answers, as an
// application would: a member cut off from the others does not answer
// (its requests time out), it is left for the next.
func write(endpoints []string, prefix string) error {
	var clients []*clientv3.Client
	for _, ep := range endpoints {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		clients = append(clients, cli)
	}
	cur := 0
	for i := 1; ; i++ {
		key := fmt.Sprintf("%s%06d", prefix, i)
		for try := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := clients[cur].Put(ctx, key, time.Now().UTC().Format(time.RFC3339Nano))
			cancel()
			if err == nil {
				fmt.Println("ack", key)
				break
			}
			if try == len(clients)-1 {
				break // unacknowledged: it may or may not be there
			}
			cur = (cur + 1) % len(clients)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keys prints the keys under prefix.
func keys(endpoints []string, prefix string, local bool) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
	if local {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := cli.Get(ctx, prefix, opts...)
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		fmt.Println(string(kv.Key))
	}
	return nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}
