package strata

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-kratos/kratos/v2/registry"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

// The metadata keys the adapter adds to every record it registers. User
// metadata may not use MetadataPrefix.
const (
	// MetadataPrefix starts every key the adapter reserves.
	MetadataPrefix = "kratos."
	// MetadataID holds the ServiceInstance's ID; its presence marks a
	// record as registered through this adapter.
	MetadataID = MetadataPrefix + "id"
	// MetadataVersion holds the ServiceInstance's Version (left out when
	// empty).
	MetadataVersion = MetadataPrefix + "version"
	// MetadataEndpoint holds the endpoint URL as registered, such as
	// "grpc://10.0.0.1:9000?isSecure=false".
	MetadataEndpoint = MetadataPrefix + "endpoint"
)

// weightKey is the metadata key Kratos' balancers read an instance's
// weight from (selector.DefaultNode).
const weightKey = "weight"

// endpoint is one registered endpoint of a ServiceInstance: its URL as
// given and the Strata instance that stands for it.
type endpoint struct {
	url  string
	inst discovery.Instance
}

// instances validates si and returns the Strata instances it is registered
// as, one per distinct endpoint, in the order given. Errors wrap
// client.ErrInvalidArgument.
func instances(si *registry.ServiceInstance) ([]endpoint, error) {
	if si == nil {
		return nil, invalidf("no service instance")
	}
	if si.Name == "" {
		return nil, invalidf("service instance %q has no name", si.ID)
	}
	if si.ID == "" {
		return nil, invalidf("service instance of %s has no ID", si.Name)
	}
	if len(si.Endpoints) == 0 {
		return nil, invalidf("service instance %s has no endpoints: nothing to register", si)
	}
	for k := range si.Metadata {
		if strings.HasPrefix(k, MetadataPrefix) {
			return nil, invalidf("service instance %s: metadata key %q: keys starting with %q are the adapter's", si, k, MetadataPrefix)
		}
	}
	weight := discovery.DefaultWeight
	if n, err := strconv.Atoi(si.Metadata[weightKey]); err == nil && n >= 1 && n <= discovery.MaxWeight {
		weight = n
	}
	out := make([]endpoint, 0, len(si.Endpoints))
	for _, e := range si.Endpoints {
		if slices.ContainsFunc(out, func(o endpoint) bool { return o.url == e }) {
			continue
		}
		addr, err := hostPort(e)
		if err != nil {
			return nil, invalidf("service instance %s: endpoint %q: %v", si, e, err)
		}
		md := maps.Clone(si.Metadata)
		if md == nil {
			md = make(map[string]string, 3)
		}
		md[MetadataID] = si.ID
		if si.Version != "" {
			md[MetadataVersion] = si.Version
		}
		md[MetadataEndpoint] = e
		out = append(out, endpoint{url: e, inst: discovery.Instance{Addr: addr, Weight: weight, Metadata: md}})
	}
	return out, nil
}

// hostPort returns the host:port of an endpoint URL, which must have a
// scheme, a host and a port from 1 to 65535.
func hostPort(e string) (string, error) {
	u, err := url.Parse(e)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("not a URL with a scheme and a host, such as grpc://10.0.0.1:9000")
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("no host name")
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", u.Port())
	}
	return u.Host, nil
}

// serviceInstances turns the Strata instances of service name into
// Kratos' view of them (see the package doc, "Mapping" and "States"),
// sorted by ID, each one's endpoints sorted. bad counts the records that
// carry MetadataID without an endpoint URL (a writer that is not this
// adapter), which are left out.
func serviceInstances(name string, set discovery.Set) (list []*registry.ServiceInstance, bad int) {
	byID := map[string]*registry.ServiceInstance{}
	plain := map[string]*registry.ServiceInstance{}
	for _, inst := range set.Instances {
		if !inst.State.Serving() {
			continue
		}
		id, ok := inst.Metadata[MetadataID]
		if !ok {
			if _, seen := plain[inst.Addr]; !seen {
				plain[inst.Addr] = plainInstance(name, inst)
			}
			continue
		}
		ep := inst.Metadata[MetadataEndpoint]
		if ep == "" {
			bad++
			continue
		}
		si := byID[id]
		if si == nil {
			si = &registry.ServiceInstance{ID: id, Name: name, Version: inst.Metadata[MetadataVersion], Metadata: userMetadata(inst.Metadata)}
			byID[id] = si
		}
		if !slices.Contains(si.Endpoints, ep) {
			si.Endpoints = append(si.Endpoints, ep)
		}
	}
	list = slices.AppendSeq(slices.Collect(maps.Values(byID)), maps.Values(plain))
	for _, si := range list {
		slices.Sort(si.Endpoints)
	}
	slices.SortFunc(list, func(a, b *registry.ServiceInstance) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Endpoints[0], b.Endpoints[0]))
	})
	return list, bad
}

// plainInstance is the ServiceInstance of an instance registered through
// the SDK alone.
func plainInstance(name string, inst discovery.Instance) *registry.ServiceInstance {
	md := maps.Clone(inst.Metadata)
	if _, ok := md[weightKey]; !ok {
		if md == nil {
			md = make(map[string]string, 1)
		}
		md[weightKey] = strconv.Itoa(inst.Weight)
	}
	return &registry.ServiceInstance{ID: inst.Addr, Name: name, Metadata: md,
		Endpoints: []string{"grpc://" + inst.Addr, "grpcs://" + inst.Addr}}
}

// userMetadata returns md without the adapter's keys, nil when nothing is
// left.
func userMetadata(md map[string]string) map[string]string {
	out := maps.Clone(md)
	maps.DeleteFunc(out, func(k, _ string) bool { return strings.HasPrefix(k, MetadataPrefix) })
	if len(out) == 0 {
		return nil
	}
	return out
}

// sameLists reports whether two lists serviceInstances returned are equal.
func sameLists(a, b []*registry.ServiceInstance) bool {
	// Equal sorts both instances' Endpoints, which are sorted already.
	return slices.EqualFunc(a, b, func(x, y *registry.ServiceInstance) bool { return x.Equal(y) })
}

// cloneList returns a deep copy of list, for a caller to keep or change.
func cloneList(list []*registry.ServiceInstance) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, len(list))
	for i, si := range list {
		c := *si
		c.Metadata = maps.Clone(si.Metadata)
		c.Endpoints = slices.Clone(si.Endpoints)
		out[i] = &c
	}
	return out
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: strata kratos: %s", client.ErrInvalidArgument, fmt.Sprintf(format, args...))
}
