// go-counter: a count that survives live reloads, through the Go kit's
// SaveState/RestoreState (the contract in tests/test_live_reload.py).
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"wasmdeck.dev/pdk"
)

const maxSeq = 65536

var (
	count, duplicates, generation int64
	highest                       int64 = -1
	poison                        string
	seen                          = make([]byte, maxSeq/8)
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:        "go-counter",
		Version:     "1.0.0",
		Description: "Counts events; the count survives a live reload",
		Actions: []pdk.Action{
			{Name: "count", Description: "Count one event", Run: countOne},
			{Name: "report", Description: "What was counted", Run: report},
			{Name: "poison", Description: "Make the next restore fail", Run: func(req *pdk.Request) (any, error) {
				poison, _ = req.String("how")
				return pdk.Obj(), nil
			}},
			{Name: "cure", Description: "Undo poison", Run: func(*pdk.Request) (any, error) {
				poison = ""
				return pdk.Obj(), nil
			}},
		},
		SaveState:    save,
		RestoreState: restore,
	})
}

func countOne(req *pdk.Request) (any, error) {
	seq, ok := req.Int("seq")
	if !ok || seq < 0 || seq >= maxSeq {
		return nil, fmt.Errorf("seq must be 0-%d", maxSeq-1)
	}
	bit := byte(1) << (seq % 8)
	if seen[seq/8]&bit != 0 {
		duplicates++
	} else {
		seen[seq/8] |= bit
		count++
	}
	highest = max(highest, seq)
	return pdk.Obj("count", count), nil
}

func report(*pdk.Request) (any, error) {
	var missing int64
	for s := int64(0); s <= highest; s++ {
		if seen[s/8]&(byte(1)<<(s%8)) == 0 {
			missing++
		}
	}
	return pdk.Obj("count", count, "duplicates", duplicates, "missing", missing,
		"generation", generation, "version", "1.0.0"), nil
}

func save() []byte {
	if poison == "big" {
		return make([]byte, 5<<20) // more than the host's max_state (4 MiB by default)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(count))
	out = binary.LittleEndian.AppendUint64(out, uint64(duplicates))
	out = binary.LittleEndian.AppendUint64(out, uint64(highest))
	out = binary.LittleEndian.AppendUint64(out, uint64(generation))
	out = append(out, byte(len(poison)))
	out = append(out, poison...)
	return append(out, seen...)
}

func restore(state []byte) error {
	if len(state) < 33 {
		return fmt.Errorf("state of %d bytes is too short", len(state))
	}
	n := func(i int) int64 { return int64(binary.LittleEndian.Uint64(state[i*8:])) }
	size := int(state[32])
	how := string(state[33 : 33+size])
	switch how {
	case "trap":
		os.Exit(3)
	case "refuse":
		return errors.New("poisoned state refused")
	case "spin":
		for i := 0; ; i++ {
			_ = i
		}
	}
	count, duplicates, highest, generation = n(0), n(1), n(2), n(3)+1
	poison = how
	seen = append([]byte(nil), state[33+size:]...)
	return nil
}

func main() {}
