// go-ticker: a trigger plugin through the Go kit (Plugin.Poll). The host polls
// "tick" every 20 ms; each poll publishes ticker.tick with the poll's number.
// "behave" sets what the next polls do (ok, fail, spin), for the tests of
// failing and slow polls (tests/test_trigger_plugins.py).
package main

import (
	"errors"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "go-ticker",
		Version:      "0.1.0",
		Description:  "A trigger plugin: each poll publishes ticker.tick",
		Capabilities: []pdk.Capability{{Kind: "events"}},
		Poll:         &pdk.Poll{Action: "tick", IntervalMS: 20},
		Actions: []pdk.Action{
			{Name: "tick", Description: "the poll: publish ticker.tick {n}", Run: tick},
			{Name: "behave", Description: `what the next polls do: {"as": ok|fail|spin}`, Run: behave},
			{Name: "ticks", Description: "how many polls published", Run: func(*pdk.Request) (any, error) {
				return pdk.Obj("n", ticks), nil
			}},
		},
	})
}

var (
	ticks     int64
	behaviour = "ok"
	spins     int64
)

func tick(*pdk.Request) (any, error) {
	switch behaviour {
	case "fail":
		return nil, errors.New("failing on purpose")
	case "spin":
		for {
			spins++
		}
	}
	if _, err := pdk.EventPublish("ticker.tick", pdk.Obj("n", ticks+1)); err != nil {
		return nil, errors.New("event_publish: " + err.Error())
	}
	ticks++
	return pdk.Obj("n", ticks), nil
}

func behave(req *pdk.Request) (any, error) {
	as, _ := req.String("as")
	if as != "ok" && as != "fail" && as != "spin" {
		return nil, errors.New(`"as" must be ok, fail or spin`)
	}
	behaviour = as
	return "ok", nil
}

func main() {} // required by Go; the host never calls it
