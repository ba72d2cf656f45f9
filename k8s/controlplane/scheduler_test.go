package controlplane

import (
	"path/filepath"
	"testing"

	"k8s.io/klog/v2"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
)

// The scheduler reads hepto's configuration as it would from --config:
// valid, its kubeconfig, replicas spread over zones then nodes.
func TestSchedulerConfig(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "scheduler.conf")
	p, err := writeSchedulerConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := schedoptions.LoadConfigFromFile(klog.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ClientConnection.Kubeconfig != kubeconfig || cfg.EnableProfiling {
		t.Errorf("kubeconfig %q profiling %v", cfg.ClientConnection.Kubeconfig, cfg.EnableProfiling)
	}
	var keys []string
	for _, pc := range cfg.Profiles[0].PluginConfig {
		if args, ok := pc.Args.(*config.PodTopologySpreadArgs); ok {
			for _, c := range args.DefaultConstraints {
				keys = append(keys, c.TopologyKey)
			}
		}
	}
	if len(keys) != 2 || keys[0] != "topology.kubernetes.io/zone" || keys[1] != "kubernetes.io/hostname" {
		t.Errorf("default spreading over %v, want zone then hostname", keys)
	}
	weight := int32(0)
	for _, p := range cfg.Profiles[0].Plugins.Score.Enabled {
		if p.Name == "PodTopologySpread" {
			weight = p.Weight
		}
	}
	if weight <= 3 {
		t.Errorf("spreading weight %d, want above the other scores' (3 at most)", weight)
	}
}
