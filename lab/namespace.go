package lab

// AddNamespace adds a bare namespace, with only lo up, as a container
// runtime makes for a pod; a CNI plugin then plugs it into a host. Close
// deletes it with the rest of the lab.
func (l *Lab) AddNamespace(name string) (*Host, error) {
	h, err := l.newHost(name)
	if err != nil {
		return nil, err
	}
	l.log.Debug("namespace", "name", name, "netns", h.Netns)
	return h, nil
}
