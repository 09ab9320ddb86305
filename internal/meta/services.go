package meta

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-registry/strata/internal/admin"
	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// serviceCallTimeout bounds the data-node calls behind one admin request.
const serviceCallTimeout = 5 * time.Second

// Service enumeration for operators (registryctl ls, the console), from
// the slot leaders of this node's replicated table: any meta node answers,
// leader or not.
//
//	GET /api/v1/services?prefix=P&after=CURSOR&limit=N
//	GET /api/v1/service?data_info_id=KEY
func (s *Server) serviceRoutes(m *admin.Mux) {
	m.API("/api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		q := catalog.Query{Prefix: r.URL.Query().Get("prefix"), After: r.URL.Query().Get("after")}
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "limit must be a number, got "+strconv.Quote(v))
				return
			}
			q.Limit = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), serviceCallTimeout)
		defer cancel()
		st := s.fsm.Current()
		page, err := catalog.List(ctx, st.Table, s.dataAddr(st), s.dialData, q)
		switch {
		case errors.Is(err, catalog.ErrInvalid):
			writeError(w, http.StatusBadRequest, err.Error())
		case err != nil:
			writeError(w, http.StatusGatewayTimeout, err.Error())
		default:
			admin.WriteJSON(w, http.StatusOK, page)
		}
	})
	m.API("/api/v1/service", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("data_info_id")
		if _, _, _, err := record.ParseDataInfoID(key); err != nil {
			writeError(w, http.StatusBadRequest, "data_info_id: "+err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), serviceCallTimeout)
		defer cancel()
		d, err := s.readDatum(ctx, key)
		if err != nil {
			writeError(w, http.StatusBadGateway, err.Error())
			return
		}
		admin.WriteJSON(w, http.StatusOK, viewOfDatum(key, d))
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	admin.WriteJSON(w, code, map[string]string{"error": msg})
}

// dataAddr resolves data nodes to their registered gRPC addresses.
func (s *Server) dataAddr(st *State) catalog.Addr {
	return func(id slot.NodeID) (string, bool) {
		m, ok := st.Members[string(id)]
		if !ok || m.GRPC == "" {
			return "", false
		}
		return m.GRPC, true
	}
}

func (s *Server) dialData(peer identity.Peer, addr string) (registryv1.DataServiceClient, error) {
	conn, err := s.Pool().Get(addr, peer)
	if err != nil {
		return nil, err
	}
	return registryv1.NewDataServiceClient(conn), nil
}

// errNoLeader says a key's slot has no leader (or none with an address).
var errNoLeader = errors.New("meta: the key's slot has no reachable leader")

// readDatum reads one key from its slot leader.
func (s *Server) readDatum(ctx context.Context, key string) (*registryv1.Datum, error) {
	st := s.fsm.Current()
	if len(st.Table.Slots) == 0 {
		return nil, errNoLeader
	}
	h, err := slot.NewHasher(len(st.Table.Slots))
	if err != nil {
		return nil, err
	}
	sl := st.Table.Slots[h.Of(key)]
	addr, ok := s.dataAddr(st)(sl.Leader)
	if !ok {
		return nil, errNoLeader
	}
	c, err := s.dialData(identity.Peer{Role: identity.RoleData, Name: string(sl.Leader)}, addr)
	if err != nil {
		return nil, err
	}
	resp, err := c.GetDatums(ctx, &registryv1.GetDatumsRequest{DataInfoIds: []string{key}})
	if err != nil {
		return nil, err
	}
	if len(resp.GetDatums()) != 1 {
		return nil, errors.New("meta: the slot leader answered no datum")
	}
	return resp.GetDatums()[0], nil
}

// publisherView is one publisher as the admin API shows it.
type publisherView struct {
	RegisterID string `json:"register_id"`
	Zone       string `json:"zone"`
	Session    string `json:"session"`
	// Values are the published values as text (invalid UTF-8 replaced:
	// the API is for people; clients read values through a session).
	Values []string `json:"values"`
}

// datumView is GET /api/v1/service's answer.
type datumView struct {
	DataInfoID string          `json:"data_info_id"`
	Version    uint64          `json:"version"`
	Publishers []publisherView `json:"publishers"`
	// InstanceStates are operators' marks (registryctl drain) by address.
	InstanceStates map[string]string `json:"instance_states"`
}

func viewOfDatum(key string, d *registryv1.Datum) datumView {
	v := datumView{DataInfoID: key, Version: d.GetVersion(), Publishers: make([]publisherView, 0, len(d.GetPublishers())),
		InstanceStates: make(map[string]string, len(d.GetInstanceStates()))}
	for _, m := range d.GetInstanceStates() {
		v.InstanceStates[m.GetAddr()] = m.GetState()
	}
	for _, p := range d.GetPublishers() {
		pv := publisherView{RegisterID: p.GetRegisterId(), Zone: p.GetZone(), Session: p.GetSessionId(), Values: make([]string, 0, len(p.GetValues()))}
		for _, val := range p.GetValues() {
			pv.Values = append(pv.Values, strings.ToValidUTF8(string(val), "\uFFFD"))
		}
		v.Publishers = append(v.Publishers, pv)
	}
	return v
}
