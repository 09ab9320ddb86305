package session

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Instances registered over HTTP are publishers of this session like a
// client stream's, with two differences: a lease (the TTL the registrant
// renews with heartbeats; the lease loop removes a lapsed one, and the
// removal is pushed as any unpublish is), and the connection they hang
// off, which is a pseudo client per identity: every HTTP instance of an
// identity on this session belongs to that identity's API client. So an
// identity's HTTP instances share one connection's rate
// (--register-rate) and quota (--max-per-conn), as one client process's
// publishers do, besides its identity's rates and quotas over all its
// connections; and a lapsed lease removes that one instance, never the
// others.
//
// The pseudo client's key (apiClientKey) holds two spaces, which no
// stream's client key (clientKey: at most one) can, so no gRPC client's
// hello, disconnect or grace expiry can reach HTTP instances, and the
// HTTP API cannot reach a stream's publishers: put refuses a register ID
// another client of the identity holds (409), removeOwn removes only the
// pseudo client's own.

// apiClientKey is the client key of owner's HTTP instances.
func apiClientKey(owner string) string { return "http api " + owner }

// apiConnID is the conn_id of HTTP instances on the data tier.
const apiConnID = "http-api"

// lease is one HTTP instance's lease.
type lease struct {
	expires time.Time
	ttl     time.Duration
	// version is the stored publisher's client version: the registration's
	// time in unix nanoseconds (and above the previous one), so an
	// instance registered again after it lapsed or was deleted is newer
	// than the tombstone its removal left on the data tier.
	version  uint64
	owner    string
	clientID string
	service  string
	inst     HTTPInstance
}

// apiClient is one identity's HTTP pseudo client: its connection rate.
type apiClient struct {
	limiter *rate.Limiter
	leases  int
}

// leases are the HTTP instances' leases.
type leases struct {
	// mu guards by and clients, and is held across a registration's store
	// (publishers.mu inside it), so a lease always describes the stored
	// publisher. Lock order: leases.mu, publishers.mu.
	mu      sync.Mutex
	by      map[pubKey]*lease
	clients map[string]*apiClient // by owner name
}

func (l *leases) init() {
	l.by = map[pubKey]*lease{}
	l.clients = map[string]*apiClient{}
}

func (l *leases) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by)
}

// limiter returns owner's pseudo client's rate limiter.
func (a *httpAPI) limiter(owner string) *rate.Limiter {
	a.leases.mu.Lock()
	defer a.leases.mu.Unlock()
	return a.clientLocked(owner).limiter
}

// clientLocked returns owner's pseudo client, made on first use. Callers
// hold leases.mu.
func (a *httpAPI) clientLocked(owner string) *apiClient {
	c := a.leases.clients[owner]
	if c == nil {
		c = &apiClient{limiter: rate.NewLimiter(rate.Limit(a.s.cfg.RegisterRate), a.s.cfg.RegisterBurst)}
		a.leases.clients[owner] = c
	}
	return c
}

// forget drops one lease of owner's (callers hold leases.mu), and the
// pseudo client with its last.
func (l *leases) forget(pk pubKey, owner string) {
	delete(l.by, pk)
	if c := l.clients[owner]; c != nil {
		if c.leases--; c.leases <= 0 {
			delete(l.clients, owner)
		}
	}
}

// ownerName is the name c's registrations are owned under ("" on a
// session without TLS).
func ownerName(c *access.Caller) string {
	if c.Insecure {
		return ""
	}
	return c.ID.Name
}

// instanceTarget is what a request's path names: the service's key and
// the instance's publication for the caller.
type instanceTarget struct {
	service, id, key, owner string
	pk                      pubKey
}

func (a *httpAPI) target(r *http.Request, c *access.Caller) (instanceTarget, error) {
	t := instanceTarget{service: r.PathValue("service"), id: r.PathValue("id"), owner: ownerName(c)}
	key, err := serviceKey(t.service)
	if err != nil {
		return t, err
	}
	if err := record.ValidateRegisterID(t.id); err != nil {
		return t, apiErrorf(http.StatusBadRequest, "session: instance id: %v", err)
	}
	t.key, t.pk = key, pubKey{key, publisher.Owned(t.owner, t.id)}
	return t, nil
}

// ownTarget is target for a request on the caller's own instance (a
// heartbeat, a deregistration): it also needs the right to publish.
func (a *httpAPI) ownTarget(r *http.Request, c *access.Caller) (instanceTarget, error) {
	t, err := a.target(r, c)
	if err == nil {
		err = a.s.permitted(c, "publish", t.service, a.s.Perms(c).CanPublish)
	}
	return t, err
}

// register serves PUT /v1/services/{service}/instances/{id}: checks (path,
// body, instance, TTL, size; then the right to publish; then the
// identity's streams, the rates, and with the store the quotas), then
// stores and forwards the publisher and starts or renews its lease. Each
// refusal changes nothing.
func (a *httpAPI) register(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	t, err := a.target(r, c)
	if err != nil {
		return err
	}
	var body HTTPInstanceBody
	if err := readBody(r, &body); err != nil {
		return err
	}
	ttl, err := a.ttlOf(body.TTL)
	if err != nil {
		return err
	}
	in := instanceRecord{V: 1, HTTPInstanceSpec: body.HTTPInstanceSpec}
	if err := in.check(); err != nil {
		return apiErrorf(http.StatusBadRequest, "session: %v", err)
	}
	value, err := json.Marshal(in)
	if err != nil {
		return apiErrorf(http.StatusBadRequest, "session: %v", err)
	}
	p := &registryv1.Publisher{
		RegisterId: t.pk.registerID, DataInfoId: t.key, Zone: in.Zone, Values: [][]byte{value},
		SessionId: s.proc, ConnId: apiConnID,
	}
	if err := publisher.ValidateClient(t.id, p); err != nil {
		return err
	}
	if err := s.permitted(c, "publish", t.service, s.Perms(c).CanPublish); err != nil {
		return err
	}
	o, release, err := a.acquireOwner(t.owner, c)
	if err != nil {
		return err
	}
	defer release()
	if err := s.admit(r.Context(), a.limiter(t.owner), o, c); err != nil {
		return err
	}
	slotID, _, _, _, err := s.route(t.key)
	if err != nil {
		return err
	}
	quota := s.identityQuota(o, c)
	inst := HTTPInstance{ID: t.id, HTTPInstanceSpec: in.HTTPInstanceSpec}

	a.leases.mu.Lock()
	now := s.clock.Now()
	prev := a.leases.by[t.pk]
	p.ClientVersion, p.RegisterTimestamp = uint64(now.UnixNano()), now.UnixNano()
	if prev != nil && p.ClientVersion <= prev.version {
		p.ClientVersion = prev.version + 1
	}
	clientID := apiClientKey(t.owner)
	stored, err := s.pubs.put(p, slotID, clientID, o, func(clientPubs int) error { return s.reserve(o, c, clientPubs, quota) })
	if err != nil || !stored {
		a.leases.mu.Unlock()
		if err == nil { // an equal or newer copy is stored: cannot be, versions only grow
			err = apiErrorf(http.StatusConflict, "session: a newer registration of %q is stored", t.id)
		}
		return err
	}
	l := &lease{expires: now.Add(ttl), ttl: ttl, version: p.ClientVersion, owner: t.owner, clientID: clientID, service: t.service, inst: inst}
	a.leases.by[t.pk] = l
	if prev == nil {
		a.clientLocked(t.owner).leases++
	}
	s.fwd.enqueue(slotID, t.pk, fwdOp{put: p}, nil)
	out := l.view()
	a.leases.mu.Unlock()

	a.metrics.registrations.Inc()
	code := http.StatusOK
	if prev == nil {
		code = http.StatusCreated
		s.logger.Debug("HTTP instance registered", "service", t.service, "id", t.id, "identity", c, "ttl", ttl)
	}
	admin.WriteJSON(w, code, out)
	return nil
}

// view is the lease's answer. Callers hold leases.mu.
func (l *lease) view() HTTPRegistration {
	return HTTPRegistration{Service: l.service, Instance: l.inst, TTL: l.ttl.String(), ExpiresAt: l.expires}
}

// acquireOwner holds the identity's owner for one request, as a stream
// holds it while open: counted against --identity-max-streams (429 past
// it) and kept from the owners' sweep meanwhile.
func (a *httpAPI) acquireOwner(name string, c *access.Caller) (*owner, func(), error) {
	s := a.s
	o, ok := s.owners.acquire(name, s.cfg.IdentityMaxStreams)
	if !ok {
		s.refused(refusedStreamsIdentity)
		return nil, nil, &apiError{code: http.StatusTooManyRequests, retryAfter: 1,
			msg: "session: " + c.String() + " has its most streams and HTTP requests open on this session; retry"}
	}
	return o, func() { s.owners.release(o) }, nil
}

// ttlOf parses a registration's TTL ("" is the default) within the bounds.
func (a *httpAPI) ttlOf(v string) (time.Duration, error) {
	cfg := a.s.cfg.HTTPAPI
	if v == "" {
		return cfg.DefaultTTL, nil
	}
	ttl, err := time.ParseDuration(v)
	if err != nil {
		return 0, apiErrorf(http.StatusBadRequest, "session: ttl %.32q is not a duration such as 30s", v)
	}
	if ttl < cfg.MinTTL || ttl > cfg.MaxTTL {
		return 0, apiErrorf(http.StatusBadRequest, "session: ttl %v is outside %v..%v", ttl, cfg.MinTTL, cfg.MaxTTL)
	}
	return ttl, nil
}

// heartbeat serves PUT .../heartbeat: renews the caller's own lease by its
// TTL. 404 when the caller holds no such instance here (unknown, lapsed,
// another identity's, or registered on another session): it registers
// again.
func (a *httpAPI) heartbeat(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	t, err := a.ownTarget(r, c)
	if err != nil {
		return err
	}
	a.leases.mu.Lock()
	now := s.clock.Now()
	l := a.leases.by[t.pk]
	if l == nil || !now.Before(l.expires) {
		a.leases.mu.Unlock()
		return apiErrorf(http.StatusNotFound, "session: %s holds no instance %q of %q on this session (unknown or lapsed): register it again", c, t.id, t.service)
	}
	l.expires = now.Add(l.ttl)
	out := l.view()
	a.leases.mu.Unlock()
	a.metrics.heartbeats.Inc()
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

// deregister serves DELETE: removes the caller's own instance (404 if it
// holds none) with an unconditional delete, as a client's unpublish.
func (a *httpAPI) deregister(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	t, err := a.ownTarget(r, c)
	if err != nil {
		return err
	}
	o, release, err := a.acquireOwner(t.owner, c)
	if err != nil {
		return err
	}
	defer release()
	if err := s.admit(r.Context(), a.limiter(t.owner), o, c); err != nil {
		return err
	}
	// The removal is queued before leases.mu is let go: a registration of
	// the same instance right after queues its put after this delete (the
	// forwarder keeps only the newest op of a publication).
	a.leases.mu.Lock()
	l := a.leases.by[t.pk]
	var e *pubEntry
	if l != nil {
		a.leases.forget(t.pk, t.owner)
		if e = s.pubs.removeOwn(t.pk, l.clientID); e != nil {
			s.forwardDelete(e, false)
		}
	}
	a.leases.mu.Unlock()
	if e == nil {
		return apiErrorf(http.StatusNotFound, "session: %s holds no instance %q of %q on this session", c, t.id, t.service)
	}
	a.metrics.deregistrations.Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// expire removes the instances whose lease lapsed by now, each with a
// delete conditional on this session still owning it (as a client's grace
// expiry: a registration of the same instance made since through another
// session is newer and stays), and returns how many. As in deregister, the
// deletes are queued under leases.mu, so a registration again comes after
// them.
func (a *httpAPI) expire(now time.Time) int {
	s := a.s
	a.leases.mu.Lock()
	var gone []string
	for pk, l := range a.leases.by {
		if now.Before(l.expires) {
			continue
		}
		a.leases.forget(pk, l.owner)
		if e := s.pubs.removeOwn(pk, l.clientID); e != nil {
			s.forwardDelete(e, true)
			gone = append(gone, l.service+"/"+l.inst.ID+" of "+cmp.Or(l.owner, "(no identity)"))
		}
	}
	// Pseudo clients whose registrations were all refused hold no lease
	// and would stay: the map keeps identities in use only.
	for name, cl := range a.leases.clients {
		if cl.leases <= 0 {
			delete(a.leases.clients, name)
		}
	}
	a.leases.mu.Unlock()
	for _, name := range gone {
		s.logger.Info("HTTP instance lease lapsed; removed", "instance", name)
	}
	a.metrics.expiries.Add(float64(len(gone)))
	return len(gone)
}

// run is the API's loop: lapsed leases every ExpiryInterval, and the watch
// hub's work (acks, resubscriptions, lingering subscriptions) as it comes.
func (a *httpAPI) run(ctx context.Context) error {
	t := a.s.clock.NewTicker(a.s.cfg.HTTPAPI.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			now := a.s.clock.Now()
			a.expire(now)
			a.watches.sweep(now)
		case <-a.watches.work:
		}
		a.watches.drain()
	}
}
