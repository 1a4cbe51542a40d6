// {{name}}: a wasmdeck trigger plugin in Go. Build it with `wasmdeck build`.
// The host calls "tick" every second (docs/teamwork.md, "Trigger plugins");
// each poll publishes {{name}}.tick {"n": N}, which a deck binds with
// trigger = { kind = "event", topic = "{{name}}.tick" }. Grant it
// events:publish:{{name}}.*
package main

import "wasmdeck.dev/pdk"

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "{{name}}",
		Version:      "0.1.0",
		Description:  "A trigger plugin: publishes {{name}}.tick every second",
		Capabilities: []pdk.Capability{{Kind: "events"}},
		// Adds "type": "trigger"; Register checks it.
		Poll: &pdk.Poll{Action: "tick", IntervalMS: 1000},
		Actions: []pdk.Action{
			{Name: "tick", Description: "The poll: publish {{name}}.tick", Run: tick},
		},
	})
}

var ticks int64

func tick(req *pdk.Request) (any, error) {
	if _, err := pdk.EventPublish("{{name}}.tick", pdk.Obj("n", ticks+1)); err != nil {
		return nil, err
	}
	ticks++
	return pdk.Obj("n", ticks), nil
}

// main is required by Go but never called: the plugin is a library the
// host calls into (a WebAssembly reactor).
func main() {}
