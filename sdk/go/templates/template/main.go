// {{name}}: a wasmdeck plugin in Go, with the parts most plugins grow:
//
//   - several actions, routed by name (pdk.Register maps each name to its
//     Run function), each declaring a JSON Schema for its params, which
//     the action checks before use;
//   - configuration given by the user, read through the host
//     (pdk.ConfigString("greeting"));
//   - logging to the host's log (pdk.Logf), and errors shown to the user
//     (return a non-nil error);
//   - state kept on the plugin instance between calls (a package variable;
//     across a live reload too with SaveState/RestoreState: docs/reload.md);
//   - test cases in tests.json: `wasmdeck test` builds the plugin and runs them.
//
// To use a host API behind a capability (pdk.HTTPGet, pdk.WSConnect,
// pdk.ProcessRun, pdk.KVGet, ...), declare it in Capabilities; the user
// grants it with --grant (e.g. --grant network:192.168.1.20).
package main

import (
	"errors"
	"strings"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:        "{{name}}",
		Version:     "0.1.0",
		Description: "Greets people and counts how often it did",
		Author:      "you",
		License:     "MIT",
		Actions: []pdk.Action{
			{
				Name:        "greet",
				Description: "Greet someone, with the greeting from the configuration",
				Params:      `{"type":"object","properties":{"who":{"type":"string"}},"required":["who"]}`,
				Run:         greet,
			},
			{Name: "stats", Description: "How many greetings this instance has made", Run: stats},
		},
		// Capabilities: []pdk.Capability{{Kind: "network"}},
	})
}

// greeted lives as long as the plugin instance: the host keeps one between calls.
var greeted int

func greet(req *pdk.Request) (any, error) {
	who, ok := req.String("who") // the schema says: a string, required
	if !ok || who == "" {
		return nil, errors.New("greet needs a non-empty 'who'")
	}
	greeting := "Hello, $who!"
	if configured, ok := pdk.ConfigString("greeting"); ok {
		greeting = configured
	}
	greeted++
	velocity := "none"
	if req.Context.Velocity != nil {
		velocity = pdk.JSON(*req.Context.Velocity)
	}
	pdk.Logf(pdk.LevelInfo, "greeted %s (velocity %s)", who, velocity)
	text := strings.ReplaceAll(greeting, "$who", who)
	return pdk.Obj("text", text, "greeted", greeted), nil
}

func stats(req *pdk.Request) (any, error) {
	return pdk.Obj("greeted", greeted), nil
}

func main() {} // required by Go; the host never calls it
