// Package pdk is the Go plugin development kit for wasmdeck (JSON ABI v1).
//
// A plugin declares itself and its actions and registers them from an init
// function; the kit provides the exports the host calls (alloc, dealloc,
// init, execute), parses each request, routes it to the action's handler
// and hands back what the handler returns:
//
//	package main
//
//	import "wasmdeck.dev/pdk"
//
//	func init() {
//		pdk.Register(&pdk.Plugin{
//			Name: "hello", Version: "0.1.0", Description: "Says hello",
//			Actions: []pdk.Action{{Name: "greet", Description: "Greets someone", Run: greet}},
//		})
//	}
//
//	func greet(req *pdk.Request) (any, error) {
//		who, _ := req.String("who")
//		return "hello, " + who, nil
//	}
//
//	func main() {} // required by Go; the host never calls it
//
// A trigger plugin (docs/teamwork.md, "Trigger plugins") sets Poll: the host
// then calls that action every IntervalMS milliseconds, and the action
// publishes what it finds with EventPublish:
//
//	Poll: &pdk.Poll{Action: "watch", IntervalMS: 100},
//
// A handler returns the action's output: a string, []byte or RawJSON as it
// is, nil for none, anything else encoded as JSON (see Marshal); or an
// error, whose message the user sees. The host functions (configuration, logging, HTTP,
// WebSocket, processes, key-value state) are plain functions of this
// package; a plugin imports from the host only those it calls, so one that
// uses none needs no capability.
//
// Build with `wasmdeck build`, which runs
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// with this kit as a workspace module.
package pdk

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ABIVersion is the version of the JSON ABI the kit implements.
const ABIVersion = 1

// Plugin describes a plugin: its metadata and its actions.
type Plugin struct {
	Name        string // lowercase letters, digits and dashes, e.g. "obs-control"
	Version     string // e.g. "0.1.0"
	Description string
	Author      string // optional
	License     string // optional, e.g. "MIT"
	Homepage    string // optional
	Actions     []Action
	// What the plugin asks the user to grant (the host enforces grants).
	Capabilities []Capability
	// Handle serves every action name when Actions is empty: the plugin
	// then declares no actions and is reached by its name.
	Handle Handler
	// Events to receive, as far as the user grants events:subscribe:PATTERN
	// (docs/teamwork.md): each is called as its Action with the params
	// {"topic", "payload", "source"}.
	Subscribe []Subscription
	// Poll makes the plugin a trigger plugin ("type": "trigger" in the
	// metadata): the host polls it by calling Poll.Action, one of Actions
	// (or any name Handle serves).
	Poll *Poll
	// SaveState and RestoreState keep the plugin's state across a live
	// reload (docs/reload.md): SaveState returns the bytes to hand the new
	// version (at most the host's max_state, 4 MiB by default); the new
	// version's RestoreState gets them before its first call, and an error
	// refuses them (the reload fails, the old version runs on). Without
	// them the new version starts afresh.
	SaveState    func() []byte
	RestoreState func(state []byte) error
}

// Subscription asks for the events whose topic matches Topic (a pattern:
// "*" is any run of characters), delivered to the action named Action.
type Subscription struct {
	Topic  string
	Action string
}

// Poll is how the host polls a trigger plugin: the action it calls (with
// empty params) and the milliseconds from the end of one poll to the start
// of the next.
type Poll struct {
	Action     string
	IntervalMS int
}

// The poll interval a trigger plugin may ask for, as the host checks it
// (src/wasmdeck/_metadata.py): 10 ms to a day.
const (
	MinPollMS = 10
	MaxPollMS = 86_400_000
)

// Action is one action a plugin offers.
type Action struct {
	Name        string
	Description string
	// Params is the JSON Schema of the action's params, as JSON text
	// (optional). The host shows it to users; check params in Run.
	Params string
	Run    Handler
}

// Capability is a capability the plugin asks for: a kind such as
// "network", "kv" or "process", and optionally its scope (e.g.
// pdk.Obj("hosts", []string{"192.168.1.20"})).
type Capability struct {
	Kind  string
	Scope Object
}

// MarshalJSON writes a bare kind, or an object with the kind and its scope.
func (c Capability) MarshalJSON() ([]byte, error) {
	if len(c.Scope) == 0 {
		return Marshal(c.Kind)
	}
	return Marshal(append(Object{{"kind", c.Kind}}, c.Scope...))
}

// Handler runs one action. Its result is the action's output: a string,
// []byte or RawJSON as it is, nil for none, anything else encoded as JSON
// by Marshal (an Object from Obj keeps its key order). A non-nil error
// fails the action with the error's message, shown to the user.
type Handler func(req *Request) (any, error)

// Request is one request from the host.
type Request struct {
	Action  string
	Params  map[string]any // never nil; values as Parse gives them
	Context Context
	Raw     []byte // the whole request, as JSON text
}

// Context is the trigger that caused the request.
type Context struct {
	Velocity  *int   // 0-127, or nil when the trigger had none
	Mode      *int64 // the host's mode, or nil
	Timestamp int64  // milliseconds since the Unix epoch
}

// VelocityOr returns the velocity, or fallback when the trigger had none.
func (c Context) VelocityOr(fallback int) int {
	if c.Velocity == nil {
		return fallback
	}
	return *c.Velocity
}

// Param returns the named parameter and whether it is present.
func (r *Request) Param(name string) (any, bool) {
	v, ok := r.Params[name]
	return v, ok
}

// String returns the named parameter when it is a string.
func (r *Request) String(name string) (string, bool) {
	s, ok := r.Params[name].(string)
	return s, ok
}

// Int returns the named parameter when it is a whole number.
func (r *Request) Int(name string) (int64, bool) {
	v, ok := r.Params[name]
	if !ok {
		return 0, false
	}
	return AsInt(v)
}

// Number returns the named parameter when it is a number.
func (r *Request) Number(name string) (float64, bool) {
	f, ok := r.Params[name].(float64)
	return f, ok
}

// Bool returns the named parameter when it is true or false.
func (r *Request) Bool(name string) (bool, bool) {
	b, ok := r.Params[name].(bool)
	return b, ok
}

var (
	registered *Plugin
	routes     map[string]Handler
	metadata   []byte // what init hands the host; referenced for the module's life
)

// Register declares the plugin. Call it once, from an init function. It
// panics on a mistake in the declaration (no name, an action without Run,
// a Params schema that is not a JSON object, a Poll of an undeclared action
// or out of range), which the host reports when it loads the plugin.
func Register(p *Plugin) {
	if registered != nil {
		panic("pdk.Register: called twice")
	}
	meta, table, err := describe(p)
	if err != nil {
		panic("pdk.Register: " + err.Error())
	}
	registered, routes, metadata = p, table, meta
}

func describe(p *Plugin) ([]byte, map[string]Handler, error) {
	if p == nil || p.Name == "" || p.Version == "" || p.Description == "" {
		return nil, nil, errors.New("a plugin needs a Name, a Version and a Description")
	}
	meta := Obj("name", p.Name, "version", p.Version, "description", p.Description)
	for _, f := range []Field{{"author", p.Author}, {"license", p.License}, {"homepage", p.Homepage}} {
		if f.Value != "" {
			meta = append(meta, f)
		}
	}
	table := map[string]Handler{}
	if len(p.Actions) > 0 {
		actions := make([]any, 0, len(p.Actions))
		for _, a := range p.Actions {
			if a.Name == "" || a.Run == nil {
				return nil, nil, fmt.Errorf("action %q needs a Name and a Run function", a.Name)
			}
			if _, dup := table[a.Name]; dup {
				return nil, nil, fmt.Errorf("action %q is declared twice", a.Name)
			}
			table[a.Name] = a.Run
			action := Obj("name", a.Name, "description", a.Description)
			if a.Params != "" {
				schema, err := Parse([]byte(a.Params))
				if _, isObject := schema.(map[string]any); err != nil || !isObject {
					return nil, nil, fmt.Errorf("action %q: Params is not a JSON object (%v)", a.Name, err)
				}
				action = append(action, Field{"params", RawJSON(a.Params)})
			}
			actions = append(actions, action)
		}
		meta = append(meta, Field{"actions", actions})
	} else if p.Handle == nil {
		return nil, nil, errors.New("a plugin needs Actions, or a Handle function for every action")
	}
	if len(p.Capabilities) > 0 {
		caps := make([]any, len(p.Capabilities))
		for i, c := range p.Capabilities {
			caps[i] = c
		}
		meta = append(meta, Field{"capabilities", caps})
	}
	if len(p.Subscribe) > 0 {
		subs := make([]any, len(p.Subscribe))
		for i, sub := range p.Subscribe {
			subs[i] = Obj("topic", sub.Topic, "action", sub.Action)
		}
		meta = append(meta, Field{"subscribe", subs})
	}
	if p.Poll != nil {
		// Without Actions, Handle serves every name: any Action will do but "".
		if _, declared := table[p.Poll.Action]; p.Poll.Action == "" || len(table) > 0 && !declared {
			return nil, nil, fmt.Errorf("Poll.Action %q is not one of the Actions", p.Poll.Action)
		}
		if p.Poll.IntervalMS < MinPollMS || p.Poll.IntervalMS > MaxPollMS {
			return nil, nil, fmt.Errorf("Poll.IntervalMS must be %d-%d (milliseconds), not %d",
				MinPollMS, MaxPollMS, p.Poll.IntervalMS)
		}
		meta = append(meta, Field{"type", "trigger"},
			Field{"poll", Obj("action", p.Poll.Action, "interval_ms", p.Poll.IntervalMS)})
	}
	encoded, err := Marshal(meta)
	return encoded, table, err
}

// parseRequest checks and unpacks the request JSON.
func parseRequest(raw []byte) (*Request, error) {
	v, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the request is not a JSON object")
	}
	req := &Request{Raw: raw, Params: map[string]any{}}
	if req.Action, ok = obj["action"].(string); !ok {
		return nil, errors.New("the request names no action")
	}
	switch params := obj["params"].(type) {
	case map[string]any:
		req.Params = params
	case nil:
	default:
		return nil, errors.New("the request's params are not a JSON object")
	}
	if ctx, ok := obj["context"].(map[string]any); ok {
		if n, ok := AsInt(ctx["velocity"]); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			velocity := int(n)
			req.Context.Velocity = &velocity
		}
		if n, ok := AsInt(ctx["mode"]); ok {
			req.Context.Mode = &n
		}
		if f, ok := ctx["timestamp"].(float64); ok && !math.IsNaN(f) && math.Abs(f) < 1<<62 {
			req.Context.Timestamp = int64(f)
		}
	}
	return req, nil
}

// run serves one request: (output, "", 0) or (nil, message, 1).
func run(raw []byte) (output []byte, message string, code int32) {
	if registered == nil {
		return nil, "the plugin registered nothing (call pdk.Register from an init function)", 1
	}
	req, err := parseRequest(raw)
	if err != nil {
		return nil, "invalid request: " + err.Error(), 1
	}
	handler := routes[req.Action]
	if len(routes) == 0 {
		handler = registered.Handle
	}
	if handler == nil {
		return nil, "unknown action " + strconv.Quote(req.Action), 1
	}
	result, err := safely(handler, req)
	if err != nil {
		message = err.Error()
		if message == "" {
			message = "action " + req.Action + " failed"
		}
		return nil, message, 1
	}
	switch out := result.(type) {
	case nil:
		return nil, "", 0
	case string:
		return []byte(out), "", 0
	case []byte:
		return out, "", 0
	case RawJSON:
		return out, "", 0
	}
	output, err = Marshal(result)
	if err != nil {
		return nil, "action " + req.Action + " returned a value it cannot send: " + err.Error(), 1
	}
	return output, "", 0
}

// safely runs the handler; a panic becomes an error with its message.
func safely(handler Handler, req *Request) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, fmt.Errorf("action %s panicked: %v", req.Action, p)
		}
	}()
	return handler(req)
}
