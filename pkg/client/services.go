package client

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// MaxListLimit is the largest page ListServices asks for.
const MaxListLimit = 1000

// ServiceQuery asks ListServices for one page.
type ServiceQuery struct {
	// Prefix keeps keys (dataInfoIDs: the data ID first) that start with it.
	Prefix string
	// After is the cursor: the previous page's Next ("" for the first page).
	After string
	// Limit is the page size, 1..MaxListLimit; 0 lets the session choose
	// (100).
	Limit int
}

// Service is one key the cluster holds, with its publisher count.
type Service struct {
	DataInfoID string `json:"data_info_id"`
	DataID     string `json:"data_id"`
	InstanceID string `json:"instance_id"`
	Group      string `json:"group"`
	Publishers int    `json:"publishers"`
}

// ServicePage is one page of ListServices.
type ServicePage struct {
	// Services are the page's keys this client may subscribe to, in byte
	// order; follow Next until it is "".
	Services []Service `json:"services"`
	// Next is the cursor of the next page; "" on the last.
	Next string `json:"next"`
	// MissingSlots are slots the session could not list (no leader, one
	// unreachable or migrating): when not empty, the listing is partial.
	MissingSlots []uint32 `json:"missing_slots,omitempty"`
}

// ListServices lists one page of the keys (services) the cluster holds,
// those this client's identity may subscribe to, through its session. It
// waits for a session as other requests do (bounded by ctx). Errors wrap
// ErrInvalidArgument (a bad query, checked before sending), the session's
// refusal kinds, or ctx's error.
func (c *Client) ListServices(ctx context.Context, q ServiceQuery) (ServicePage, error) {
	if q.Limit < 0 || q.Limit > MaxListLimit {
		return ServicePage{}, &localError{ErrInvalidArgument, fmt.Errorf("limit %d out of range 0..%d", q.Limit, MaxListLimit)}
	}
	for _, f := range [...]struct{ name, v string }{{"prefix", q.Prefix}, {"after", q.After}} {
		if len(f.v) > record.MaxDataInfoIDBytes || !utf8.ValidString(f.v) {
			return ServicePage{}, &localError{ErrInvalidArgument, fmt.Errorf("%s must be UTF-8 text of at most %d bytes", f.name, record.MaxDataInfoIDBytes)}
		}
	}
	st, err := c.stream(ctx)
	if err != nil {
		return ServicePage{}, err
	}
	resp, err := registryv1.NewSessionServiceClient(st.cc).ListServices(ctx, &registryv1.ListServicesRequest{
		Prefix: q.Prefix, After: q.After, Limit: uint32(q.Limit),
	})
	if err != nil {
		if ctx.Err() != nil {
			return ServicePage{}, ctx.Err()
		}
		if s, ok := status.FromError(err); ok {
			return ServicePage{}, fromCode(s.Code(), s.Message())
		}
		return ServicePage{}, errors.Join(errors.New("strata: list services"), err)
	}
	page := ServicePage{Services: make([]Service, 0, len(resp.GetServices())), Next: resp.GetNext(), MissingSlots: resp.GetMissingSlots()}
	for _, s := range resp.GetServices() {
		page.Services = append(page.Services, Service{DataInfoID: s.GetDataInfoId(), DataID: s.GetDataId(),
			InstanceID: s.GetInstanceId(), Group: s.GetGroup(), Publishers: int(s.GetPublishers())})
	}
	return page, nil
}
