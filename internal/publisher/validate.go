package publisher

import (
	"fmt"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Validate checks a publisher as a session stores it (after the session
// set session_id and register_timestamp): a well-formed data_info_id, a
// non-empty printable register_id (maybe Owned), a non-empty session_id,
// zone and conn_id within their limits, at most record.MaxValues values of
// at most record.MaxValueBytes each. The error wraps record.ErrTooLarge or
// record.ErrInvalid (see there). Value indexes in messages count from 0.
func Validate(p *registryv1.Publisher) error {
	if p == nil {
		return fmt.Errorf("%w: publisher is nil", record.ErrInvalid)
	}
	if _, _, _, err := record.ParseDataInfoID(p.GetDataInfoId()); err != nil {
		return err
	}
	if err := checkStoredRegisterID(p.GetRegisterId()); err != nil {
		return err
	}
	return checkRest(p)
}

// ValidateClient checks a publisher a session built from a client's
// registration: clientRegisterID is the register ID the client sent
// (checked as record.ValidateRegisterID does), p's is that ID as stored
// (Owned by the client's identity, whose name holds no space, slash or
// control character: only its length is checked again); everything else
// as Validate checks it. The client's ID comes first, so its errors name
// the ID the client sent. A publisher it accepts passes Validate.
func ValidateClient(clientRegisterID string, p *registryv1.Publisher) error {
	if p == nil {
		return fmt.Errorf("%w: publisher is nil", record.ErrInvalid)
	}
	if err := record.ValidateRegisterID(clientRegisterID); err != nil {
		return err
	}
	if err := record.ValidateString("register_id with its owner", p.GetRegisterId(), MaxStoredRegisterIDBytes, false); err != nil {
		return err
	}
	if _, _, _, err := record.ParseDataInfoID(p.GetDataInfoId()); err != nil {
		return err
	}
	return checkRest(p)
}

// checkRest checks what follows a publisher's ids: its session_id, zone
// and conn_id, and its values.
func checkRest(p *registryv1.Publisher) error {
	if err := record.ValidateString("session_id", p.GetSessionId(), MaxSessionIDBytes, false); err != nil {
		return err
	}
	if err := record.ValidateString("zone", p.GetZone(), record.MaxZoneBytes, true); err != nil {
		return err
	}
	if err := record.ValidateString("conn_id", p.GetConnId(), MaxConnIDBytes, true); err != nil {
		return err
	}
	return record.ValidateValues(p.GetValues())
}

// ValidateUnpublish checks an unpublish: a well-formed data_info_id, a
// non-empty printable register_id and a session_id (optional) within its
// limit. The error wraps record.ErrTooLarge or record.ErrInvalid.
func ValidateUnpublish(u *registryv1.Unpublish) error {
	if u == nil {
		return fmt.Errorf("%w: unpublish is nil", record.ErrInvalid)
	}
	if _, _, _, err := record.ParseDataInfoID(u.GetDataInfoId()); err != nil {
		return err
	}
	if err := record.ValidateString("session_id", u.GetSessionId(), MaxSessionIDBytes, true); err != nil {
		return err
	}
	return checkStoredRegisterID(u.GetRegisterId())
}

// checkStoredRegisterID checks a register ID as stored (maybe
// owner-qualified).
func checkStoredRegisterID(id string) error {
	return record.ValidateID("register_id", id, MaxStoredRegisterIDBytes)
}
