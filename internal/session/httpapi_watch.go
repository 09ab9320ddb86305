package session

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/push"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// HTTP watchers (blocking queries and event streams) of a service share
// one subscriber of the session's push engine: a watched service is a
// push.Conn of its own with one subscriber, which the engine pushes as
// fast as a gRPC client's (the same change notices, fetches and version
// scan), and which acks each push as soon as it has stored the list. The
// subscription is made with the service's first watcher and removed
// WatchLinger after its last leaves, so a long-poller's next request,
// moments later, finds the list warm. Nothing polls the data nodes.

// watchSubscriber is the register id of a watched service's one
// subscriber on its pseudo connection.
const watchSubscriber = "http-watch"

// watched is one service watched over HTTP. It implements push.Conn.
type watched struct {
	hub *watchHub
	key string
	// connID is unique per watched (a counter): a service watched again
	// after its subscription was removed is another connection to the
	// engine, so a late RemoveConn of the old one cannot touch the new.
	connID string

	// Guarded by hub.mu.
	refs      int
	idleSince time.Time
	// list is the newest list pushed (nil until the first): a datum the
	// watched holds read-only, its publishers shared with the engine.
	list *registryv1.Datum
	// changed is closed (and replaced) when a newer list arrives.
	changed chan struct{}
}

// ID implements push.Conn.
func (w *watched) ID() string { return w.connID }

// Zone implements push.Conn: HTTP watchers see every zone's instances.
func (w *watched) Zone() string { return "" }

// Send implements push.Conn: it keeps the list, wakes the watchers and
// queues the ack for the hub's loop (Send must not call the engine).
func (w *watched) Send(p *push.Push) error {
	h := w.hub
	h.mu.Lock()
	if w.list == nil || p.Version > w.list.GetVersion() {
		w.list = &registryv1.Datum{DataInfoId: p.Key, Version: p.Version, Publishers: p.Publishers, InstanceStates: p.InstanceStates}
		close(w.changed)
		w.changed = make(chan struct{})
	}
	h.acks = append(h.acks, watchAck{connID: w.connID, version: p.Version, ids: p.SubscriberIDs})
	h.mu.Unlock()
	signal(h.work)
	return nil
}

// Close implements push.Conn: the engine dropped the subscription (it
// cannot, as the hub acks at once, but if it did): subscribe again.
func (w *watched) Close(string) {
	h := w.hub
	h.mu.Lock()
	if h.by[w.key] == w {
		h.resub = append(h.resub, w)
	}
	h.mu.Unlock()
	signal(h.work)
}

type watchAck struct {
	connID  string
	version uint64
	ids     []string
}

// watchHub holds the watched services and counts watchers.
type watchHub struct {
	a *httpAPI
	// work wakes the API's loop (acks and resubscriptions wait).
	work chan struct{}

	mu      sync.Mutex
	by      map[string]*watched // by key
	next    uint64              // connection id counter
	total   int                 // watchers open
	byOwner map[string]int      // watchers open per identity
	acks    []watchAck
	resub   []*watched
}

func (h *watchHub) init(a *httpAPI) {
	h.a, h.work, h.by, h.byOwner = a, make(chan struct{}, 1), map[string]*watched{}, map[string]int{}
}

// acquire counts one more watcher of key for the caller (429 past the
// node's or the identity's cap) and returns the watched service,
// subscribing it on its first watcher. The caller releases it.
func (h *watchHub) acquire(key string, c *access.Caller) (*watched, error) {
	cfg := h.a.s.cfg.HTTPAPI
	owner := ownerName(c)
	h.mu.Lock()
	switch {
	case h.total >= cfg.MaxWatches:
		h.mu.Unlock()
		h.a.metrics.watchesRefused.Inc()
		return nil, &apiError{code: http.StatusTooManyRequests, retryAfter: 1,
			msg: fmt.Sprintf("session: %d watches open on this session, at most %d allowed; retry later or on another session", h.total, cfg.MaxWatches)}
	case owner != "" && h.byOwner[owner] >= cfg.MaxWatchesPerIdentity:
		n := h.byOwner[owner]
		h.mu.Unlock()
		h.a.metrics.watchesRefused.Inc()
		return nil, &apiError{code: http.StatusTooManyRequests, retryAfter: 1,
			msg: fmt.Sprintf("session: %s has %d watches open on this session, at most %d allowed; close one first", c, n, cfg.MaxWatchesPerIdentity)}
	}
	h.total++
	h.byOwner[owner]++
	w := h.by[key]
	fresh := w == nil
	if fresh {
		h.next++
		w = &watched{hub: h, key: key, connID: "http-watch-" + strconv.FormatUint(h.next, 10), changed: make(chan struct{})}
		h.by[key] = w
	}
	w.refs++
	h.mu.Unlock()
	if fresh {
		h.a.s.engine.Subscribe(w, watchSubscriber, key, push.ScopeGlobal, 0)
	}
	return w, nil
}

// release ends a watcher acquire counted.
func (h *watchHub) release(w *watched, c *access.Caller) {
	owner := ownerName(c)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.byOwner[owner]--; h.byOwner[owner] <= 0 {
		delete(h.byOwner, owner)
	}
	if w.refs--; w.refs == 0 {
		w.idleSince = h.a.s.clock.Now()
	}
}

// watchers returns how many watchers are open.
func (h *watchHub) watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// sweep removes the subscriptions without watchers since WatchLinger.
func (h *watchHub) sweep(now time.Time) {
	linger := h.a.s.cfg.HTTPAPI.WatchLinger
	var gone []*watched
	h.mu.Lock()
	for key, w := range h.by {
		if w.refs == 0 && now.Sub(w.idleSince) >= linger {
			delete(h.by, key)
			gone = append(gone, w)
		}
	}
	h.mu.Unlock()
	for _, w := range gone {
		h.a.s.engine.RemoveConn(w.connID)
	}
}

// drain hands the engine the acks and resubscriptions waiting.
func (h *watchHub) drain() {
	h.mu.Lock()
	acks, resub := h.acks, h.resub
	h.acks, h.resub = nil, nil
	h.mu.Unlock()
	e := h.a.s.engine
	for _, a := range acks {
		if len(a.ids) > 0 {
			e.AckAll(a.connID, a.version, a.ids[0], a.ids[1:], 0)
		}
	}
	for _, w := range resub {
		h.mu.Lock()
		current, v := h.by[w.key] == w, w.list.GetVersion()
		h.mu.Unlock()
		if current { // not swept since: a removed one must not come back
			e.Subscribe(w, watchSubscriber, w.key, push.ScopeGlobal, v)
		}
	}
}

// snapshot returns what w holds now and the channel closed on its next
// change.
func (w *watched) snapshot() (list *registryv1.Datum, changed <-chan struct{}) {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	return w.list, w.changed
}

// instanceList decodes a datum's publishers as discovery instances (their
// register IDs owner-qualified when owned: the client's part shown), as
// discovery's watchers do: values that are not instances are counted as
// skipped, not shown; an operator's mark on an address (registryctl drain)
// shows when it takes less traffic than the state its owner set.
func instanceList(service string, d *registryv1.Datum, owned bool) HTTPInstanceList {
	out := HTTPInstanceList{Service: service, Index: d.GetVersion(), Instances: []HTTPInstance{}}
	marks := make(map[string]string, len(d.GetInstanceStates()))
	for _, m := range d.GetInstanceStates() {
		marks[m.GetAddr()] = m.GetState()
	}
	for _, p := range d.GetPublishers() {
		id := publisher.ClientRegisterID(p.GetRegisterId(), owned)
		for _, v := range p.GetValues() {
			if inst, ok := decodeInstance(id, v, p.GetZone()); ok {
				if m, marked := marks[inst.Addr]; marked && stateRank(m) > stateRank(inst.State) {
					inst.State = m
				}
				out.Instances = append(out.Instances, inst)
			} else {
				out.Skipped++
			}
		}
	}
	slices.SortFunc(out.Instances, func(a, b HTTPInstance) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Addr, b.Addr))
	})
	return out
}

// stateRank orders instance states by how much traffic they take, as
// discovery does: serving, then draining and states it does not know,
// then disabled.
func stateRank(state string) int {
	switch state {
	case "", "serving":
		return 0
	case "disabled":
		return 2
	}
	return 1
}

// subscribeTarget checks a read of service by c: the name, then the
// right to subscribe.
func (a *httpAPI) subscribeTarget(r *http.Request, c *access.Caller) (service, key string, err error) {
	service = r.PathValue("service")
	if key, err = serviceKey(service); err != nil {
		return "", "", err
	}
	if err := a.s.permitted(c, "subscribe", service, a.s.Perms(c).CanSubscribe); err != nil {
		return "", "", err
	}
	return service, key, nil
}

// list serves GET /v1/services/{service}/instances: the instances now,
// or with ?index=N a blocking query that answers once the version passes
// N, or after ?wait= (the same index then).
func (a *httpAPI) list(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	service, key, err := a.subscribeTarget(r, c)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("index") {
		if q.Has("wait") {
			return apiErrorf(http.StatusBadRequest, "session: wait needs an index (a blocking query waits for the version to pass it)")
		}
		list, err := a.current(r.Context(), key)
		if err != nil {
			return err
		}
		return a.answerList(w, instanceList(service, list, s.Secure()))
	}
	index, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil {
		return apiErrorf(http.StatusBadRequest, "session: index %.32q is not a version (a number from X-Strata-Index)", q.Get("index"))
	}
	wait, err := a.waitOf(q.Get("wait"))
	if err != nil {
		return err
	}
	wt, err := a.watches.acquire(key, c)
	if err != nil {
		return err
	}
	defer a.watches.release(wt, c)
	timer := s.clock.NewTicker(wait)
	defer timer.Stop()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + apiIOTimeout))
	for {
		list, changed := wt.snapshot()
		if list != nil && list.GetVersion() > index {
			return a.answerList(w, instanceList(service, list, s.Secure()))
		}
		select {
		case <-changed:
		case <-timer.C():
			if list == nil {
				return apiErrorf(http.StatusServiceUnavailable, "session: the service's list could not be read in %v; retry", wait)
			}
			return a.answerList(w, instanceList(service, list, s.Secure()))
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// current returns key's list now: the watched copy when one is warm, else
// one read from the slot leader.
func (a *httpAPI) current(ctx context.Context, key string) (*registryv1.Datum, error) {
	a.watches.mu.Lock()
	wt := a.watches.by[key]
	a.watches.mu.Unlock()
	if wt != nil {
		if list, _ := wt.snapshot(); list != nil {
			return list, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.cfg.CallTimeout)
	defer cancel()
	return a.s.Fetch(ctx, key)
}

func (a *httpAPI) answerList(w http.ResponseWriter, l HTTPInstanceList) error {
	w.Header().Set("X-Strata-Index", strconv.FormatUint(l.Index, 10))
	admin.WriteJSON(w, http.StatusOK, l)
	return nil
}

// waitOf parses a blocking query's wait ("" is the default).
func (a *httpAPI) waitOf(v string) (time.Duration, error) {
	cfg := a.s.cfg.HTTPAPI
	if v == "" {
		return cfg.DefaultWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > cfg.MaxWait {
		return 0, apiErrorf(http.StatusBadRequest, "session: wait %.32q must be a duration such as 30s, at most %v", v, cfg.MaxWait)
	}
	return d, nil
}

// watch serves GET /v1/services/{service}/watch as Server-Sent Events:
// one "instances" event per new version (id: the version, data: the list
// as JSON), starting with the current one, or with the first after
// Last-Event-ID when the client resumes; a comment every WatchHeartbeat
// meanwhile. It ends when the client goes or the session stops.
func (a *httpAPI) watch(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	service, key, err := a.subscribeTarget(r, c)
	if err != nil {
		return err
	}
	var last uint64
	resume := r.Header.Get("Last-Event-ID") != ""
	if resume {
		if last, err = strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err != nil {
			return apiErrorf(http.StatusBadRequest, "session: Last-Event-ID %.32q is not a version", r.Header.Get("Last-Event-ID"))
		}
	}
	wt, err := a.watches.acquire(key, c)
	if err != nil {
		return err
	}
	defer a.watches.release(wt, c)
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(apiIOTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := write([]byte(": watching " + service + "\n\n")); err != nil {
		return err
	}
	hb := s.clock.NewTicker(s.cfg.HTTPAPI.WatchHeartbeat)
	defer hb.Stop()
	sent := false
	for {
		list, changed := wt.snapshot()
		if list != nil && (list.GetVersion() > last || (!resume && !sent)) {
			b, err := json.Marshal(instanceList(service, list, s.Secure()))
			if err != nil {
				return err
			}
			if err := write(fmt.Appendf(nil, "id: %d\nevent: instances\ndata: %s\n\n", list.GetVersion(), b)); err != nil {
				return err
			}
			last, sent = list.GetVersion(), true
		}
		select {
		case <-changed:
		case <-hb.C():
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return err
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// services serves GET /v1/services: one page of the services the slot
// leaders hold (internal/catalog), those the caller may subscribe to
// (Server.listServices).
func (a *httpAPI) services(w http.ResponseWriter, r *http.Request, c *access.Caller) error {
	s := a.s
	q, err := catalogQuery(r)
	if err != nil {
		return err
	}
	page, err := s.listServices(r.Context(), c, q)
	if err != nil {
		return err
	}
	out := HTTPServiceList{Services: []HTTPService{}, Next: page.Next, Missing: page.Missing}
	for _, e := range page.Entries {
		out.Services = append(out.Services, HTTPService{Service: e.DataID, InstanceID: e.InstanceID, Group: e.Group, Publishers: e.Publishers})
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}
