package metaclient

import (
	"testing"

	"google.golang.org/protobuf/proto"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// FuzzTable: any decodable slot table is converted or refused without a
// panic, and one that is converted can be indexed by every slot ID its
// slot count allows.
func FuzzTable(f *testing.F) {
	good := &registryv1.SlotTable{Epoch: 3, SlotCount: 2, Replicas: 2, Slots: []*registryv1.Slot{
		{Id: 0, Leader: "d1", LeaderEpoch: 1, Followers: []string{"d2"}}, {Id: 1, Leader: "d2", LeaderEpoch: 2, Followers: []string{"d1"}},
	}}
	b, _ := proto.Marshal(good)
	f.Add(b)
	short := proto.Clone(good).(*registryv1.SlotTable)
	short.SlotCount = 3
	b, _ = proto.Marshal(short)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		pt := &registryv1.SlotTable{}
		if proto.Unmarshal(b, pt) != nil {
			return
		}
		tb, err := Table(pt)
		if err != nil {
			return
		}
		for id := range pt.GetSlotCount() {
			if uint32(tb.Slots[id].ID) != id {
				t.Fatalf("slot %d at row %d", tb.Slots[id].ID, id)
			}
		}
	})
}
