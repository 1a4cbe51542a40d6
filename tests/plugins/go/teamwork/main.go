// go-teamwork: events, plugin calls and shared state through the Go kit: the
// teamwork contract of tests/test_teamwork.py.
package main

import (
	"errors"
	"strconv"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "go-teamwork",
		Version:      "0.1.0",
		Description:  "Events, plugin calls and shared state through the Go kit",
		Capabilities: []pdk.Capability{{Kind: "events"}, {Kind: "plugins"}, {Kind: "state"}},
		Subscribe:    []pdk.Subscription{{Topic: "*", Action: "react"}},
		Actions: []pdk.Action{
			{Name: "publish", Description: "event_publish with the params as the request", Run: publish},
			{Name: "call", Description: "plugin_call with the params as the request", Run: call},
			{Name: "state-get", Description: "state_get with the params", Run: stateGet},
			{Name: "state-set", Description: "state_set with the params", Run: stateSet},
			{Name: "state-delete", Description: "state_delete with the params", Run: stateDelete},
			{Name: "state-list", Description: "state_list with the params", Run: stateList},
			{Name: "add", Description: "add 1 to a shared counter, times times, by compare-and-swap", Run: add},
			{Name: "react", Description: "an event: kept, and bounced to config bounce_to", Run: react},
			{Name: "seen", Description: "the events kept so far", Run: func(*pdk.Request) (any, error) { return seen, nil }},
			{Name: "echo", Description: "the params", Run: func(req *pdk.Request) (any, error) { return req.Params, nil }},
			{Name: "spin", Description: "loops until stopped", Run: spin},
		},
	})
}

var seen = []any{}

// answer is the host's response as the contract outputs it: the answer, or its error.
func answer(response pdk.Object, err error) (any, error) {
	var failure *pdk.HostError
	if errors.As(err, &failure) {
		return pdk.Obj("error", pdk.Obj("kind", failure.Kind, "message", failure.Message)), nil
	}
	if err != nil {
		return nil, err
	}
	return response, nil
}

func text(req *pdk.Request, name string) string {
	value, _ := req.String(name)
	return value
}

// version is the request's "version", or -1 when it has none.
func version(req *pdk.Request) int64 {
	if v, ok := req.Int("version"); ok {
		return v
	}
	return -1
}

func publish(req *pdk.Request) (any, error) {
	payload, _ := req.Param("payload")
	n, err := pdk.EventPublish(text(req, "topic"), payload)
	return answer(pdk.Obj("delivered", n), err)
}

func call(req *pdk.Request) (any, error) {
	params, _ := req.Param("params")
	output, err := pdk.PluginCall(text(req, "plugin"), text(req, "action"), params)
	return answer(pdk.Obj("output", string(output)), err)
}

func stateGet(req *pdk.Request) (any, error) {
	value, v, err := pdk.StateGet(text(req, "namespace"), text(req, "key"))
	var shown any
	if value != nil {
		shown = string(value)
	}
	return answer(pdk.Obj("value", shown, "version", v), err)
}

func stateSet(req *pdk.Request) (any, error) {
	stored, v, err := pdk.StateSet(text(req, "namespace"), text(req, "key"), []byte(text(req, "value")), version(req))
	return answer(pdk.Obj("ok", stored, "version", v), err)
}

func stateDelete(req *pdk.Request) (any, error) {
	deleted, err := pdk.StateDelete(text(req, "namespace"), text(req, "key"), version(req))
	return answer(pdk.Obj("deleted", deleted), err)
}

func stateList(req *pdk.Request) (any, error) {
	keys, err := pdk.StateList(text(req, "namespace"), text(req, "prefix"))
	return answer(pdk.Obj("keys", keys), err)
}

func add(req *pdk.Request) (any, error) {
	namespace, key := text(req, "namespace"), text(req, "key")
	times, ok := req.Int("times")
	if !ok {
		times = 1
	}
	var done, retries, value int64
	for done < times {
		current, v, err := pdk.StateGet(namespace, key)
		if err != nil {
			return nil, err
		}
		previous, _ := strconv.ParseInt(string(current), 10, 64)
		value = previous + 1
		stored, _, err := pdk.StateSet(namespace, key, []byte(strconv.FormatInt(value, 10)), v)
		if err != nil {
			return nil, err
		}
		if stored {
			done++
		} else {
			retries++
		}
	}
	return pdk.Obj("value", value, "retries", retries), nil
}

func react(req *pdk.Request) (any, error) {
	seen = append(seen, req.Params)
	if to, ok := pdk.ConfigString("bounce_to"); ok {
		payload, _ := req.Param("payload")
		// The loop tests expect the refusal to end the bouncing, not the call.
		_, _ = pdk.EventPublish(to, payload)
	}
	return "ok", nil
}

var spins int

func spin(*pdk.Request) (any, error) {
	for {
		spins++
	}
}


func main() {}
