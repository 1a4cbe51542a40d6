// hue: Philips Hue lights from a pad, over the bridge's v1 REST API.
//
//	on         {"light": "1"} or {"group": "0"}          -> turns it on
//	off        the same                                  -> turns it off
//	toggle     the same                                  -> reads the state, then flips it
//	brightness the same, plus {"bri": 1-254}, or the trigger's velocity (0-127 -> 1-254)
//	color      the same, plus {"hue": 0-65535, "sat": 0-254}, {"xy": [x, y]} or {"ct": 153-500}
//
// The bridge address and the user name (the "username" the bridge gave when
// its link button was pressed) come from the configuration:
//
//	wasmdeck run build/hue.wasm brightness --params '{"group": "1"}' --context '{"velocity": 90}' \
//	    --config '{"bridge": "192.168.1.20", "username": "..."}' --grant network:192.168.1.20
//
// A bridge answers HTTP 200 even when it refuses: the errors are in the body
// ([{"error": {"type": 3, "description": "..."}}]); they reach the user as
// the action's error, with the bridge's own description.
package main

import (
	"errors"
	"fmt"
	"strings"

	"wasmdeck.dev/pdk"
)

// Every action addresses one light or one group (group "0" is all lights).
const target = `"light":{"type":["string","integer"],"description":"a light id, e.g. \"1\""},` +
	`"group":{"type":["string","integer"],"description":"a group id; \"0\" is every light"}`

func schema(more string) string {
	return `{"type":"object","properties":{` + target + more + `}}`
}

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "hue",
		Version:      "1.0.0",
		Description:  "Philips Hue lights and rooms over the bridge's REST API",
		Author:       "wasmdeck",
		License:      "MIT",
		Capabilities: []pdk.Capability{{Kind: "network"}},
		Actions: []pdk.Action{
			{Name: "on", Description: "Turn a light or group on", Params: schema(""), Run: turn(true)},
			{Name: "off", Description: "Turn a light or group off", Params: schema(""), Run: turn(false)},
			{Name: "toggle", Description: "Turn it on if it is off, else off", Params: schema(""), Run: toggle},
			{
				Name:        "brightness",
				Description: "Set the brightness from bri, or from the trigger's velocity",
				Params:      schema(`,"bri":{"type":"integer","minimum":1,"maximum":254}`),
				Run:         brightness,
			},
			{
				Name:        "color",
				Description: "Set the colour: hue and sat, xy, or a colour temperature ct",
				Params: schema(`,"hue":{"type":"integer","minimum":0,"maximum":65535},` +
					`"sat":{"type":"integer","minimum":0,"maximum":254},` +
					`"xy":{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":2},` +
					`"ct":{"type":"integer","minimum":153,"maximum":500}`),
				Run: color,
			},
		},
	})
}

// bridge is where requests go: http://<bridge>/api/<username>.
type bridge struct{ base string }

func connect() (*bridge, error) {
	address, ok := pdk.ConfigString("bridge")
	if !ok || address == "" || strings.ContainsAny(address, "/?#@ ") {
		return nil, errors.New(`configure the bridge's address as "bridge" (e.g. "192.168.1.20")`)
	}
	username, ok := pdk.ConfigString("username")
	if !ok || username == "" || strings.ContainsAny(username, "/?#% ") {
		return nil, errors.New(`configure the bridge user as "username" (the name the bridge gave ` +
			`when its link button was pressed)`)
	}
	return &bridge{base: "http://" + address + "/api/" + username}, nil
}

// hueError is the bridge refusing: the descriptions of its errors.
func hueErrors(body any) error {
	list, ok := body.([]any)
	if !ok {
		return nil
	}
	var messages []string
	for _, item := range list {
		entry, _ := item.(map[string]any)
		if failure, ok := entry["error"].(map[string]any); ok {
			description, _ := failure["description"].(string)
			if description == "" {
				description = "error " + pdk.JSON(failure["type"])
			}
			messages = append(messages, description)
		}
	}
	if len(messages) == 0 {
		return nil
	}
	return errors.New("Hue bridge: " + strings.Join(messages, "; "))
}

// answer checks an HTTP answer from the bridge and parses its body.
func answer(response *pdk.HTTPResponse, err error) (any, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Hue bridge: %w", err)
	}
	if response.Status != 200 {
		return nil, fmt.Errorf("the Hue bridge answered HTTP %d %s", response.Status, response.Reason)
	}
	body, err := response.JSON()
	if err != nil {
		return nil, fmt.Errorf("the Hue bridge answered something other than JSON: %w", err)
	}
	return body, hueErrors(body)
}

func (b *bridge) get(path string) (map[string]any, error) {
	body, err := answer(pdk.HTTPGet(b.base + path))
	if err != nil {
		return nil, err
	}
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the Hue bridge answered %s for %s", pdk.JSON(body), path)
	}
	return obj, nil
}

func (b *bridge) put(path string, state pdk.Object) error {
	_, err := answer(pdk.HTTPSendJSON("PUT", b.base+path, state))
	return err
}

// lamp is what an action addresses: a light or a group.
type lamp struct {
	kind, id string // "lights" or "groups"
}

func (l lamp) statePath() string {
	if l.kind == "groups" {
		return "/groups/" + l.id + "/action"
	}
	return "/lights/" + l.id + "/state"
}

func (l lamp) name() string { return strings.TrimSuffix(l.kind, "s") }

// lampOf reads {"light": ID} or {"group": ID} from the params.
func lampOf(req *pdk.Request) (lamp, error) {
	light, isLight := req.Param("light")
	group, isGroup := req.Param("group")
	if isLight == isGroup {
		return lamp{}, fmt.Errorf(`%s needs either {"light": ID} or {"group": ID}`, req.Action)
	}
	kind, value := "lights", light
	if isGroup {
		kind, value = "groups", group
	}
	id, ok := value.(string)
	if n, whole := pdk.AsInt(value); whole {
		id, ok = fmt.Sprint(n), true
	}
	if !ok || id == "" || strings.Trim(id, "0123456789") != "" {
		return lamp{}, fmt.Errorf("%s must be an id such as \"1\", not %s", strings.TrimSuffix(kind, "s"), pdk.JSON(value))
	}
	return lamp{kind, id}, nil
}

// apply sends state to the light or group and reports what it set.
func apply(req *pdk.Request, state pdk.Object) (any, error) {
	target, err := lampOf(req)
	if err != nil {
		return nil, err
	}
	b, err := connect()
	if err != nil {
		return nil, err
	}
	if err := b.put(target.statePath(), state); err != nil {
		return nil, err
	}
	return pdk.Obj(target.name(), target.id, "state", state), nil
}

func turn(on bool) pdk.Handler {
	return func(req *pdk.Request) (any, error) {
		return apply(req, pdk.Obj("on", on))
	}
}

func toggle(req *pdk.Request) (any, error) {
	target, err := lampOf(req)
	if err != nil {
		return nil, err
	}
	b, err := connect()
	if err != nil {
		return nil, err
	}
	current, err := b.get("/" + target.kind + "/" + target.id)
	if err != nil {
		return nil, err
	}
	// A light says state.on; a group says state.any_on.
	state, _ := current["state"].(map[string]any)
	on, known := state["on"].(bool)
	if target.kind == "groups" {
		on, known = state["any_on"].(bool)
	}
	if !known {
		return nil, fmt.Errorf("the Hue bridge did not say whether %s %s is on", target.name(), target.id)
	}
	return apply(req, pdk.Obj("on", !on))
}

func brightness(req *pdk.Request) (any, error) {
	var bri int64
	if value, given := req.Param("bri"); given {
		n, whole := pdk.AsInt(value)
		if !whole || n < 1 || n > 254 {
			return nil, fmt.Errorf("bri must be a whole number from 1 to 254, not %s", pdk.JSON(value))
		}
		bri = n
	} else if req.Context.Velocity != nil {
		velocity := min(max(int64(*req.Context.Velocity), 0), 127)
		bri = 1 + (2*velocity*253+127)/254 // 0-127 onto 1-254, rounded
	} else {
		return nil, errors.New(`brightness needs {"bri": 1-254} or a trigger with a velocity`)
	}
	// A light that is off refuses a brightness: turn it on with it.
	return apply(req, pdk.Obj("on", true, "bri", bri))
}

func color(req *pdk.Request) (any, error) {
	state := pdk.Obj("on", true)
	hue, hasHue := req.Param("hue")
	sat, hasSat := req.Param("sat")
	xy, hasXY := req.Param("xy")
	ct, hasCT := req.Param("ct")
	switch {
	case hasHue || hasSat:
		for _, part := range []struct {
			name  string
			value any
			given bool
		}{{"hue", hue, hasHue}, {"sat", sat, hasSat}} {
			if !part.given {
				continue
			}
			n, whole := pdk.AsInt(part.value)
			if !whole {
				return nil, fmt.Errorf("%s must be a whole number, not %s", part.name, pdk.JSON(part.value))
			}
			state = append(state, pdk.Field{Key: part.name, Value: n})
		}
	case hasXY:
		pair, ok := xy.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("xy must be two numbers [x, y], not %s", pdk.JSON(xy))
		}
		x, okX := pair[0].(float64)
		y, okY := pair[1].(float64)
		if !okX || !okY {
			return nil, fmt.Errorf("xy must be two numbers [x, y], not %s", pdk.JSON(xy))
		}
		state = append(state, pdk.Field{Key: "xy", Value: []float64{x, y}})
	case hasCT:
		n, whole := pdk.AsInt(ct)
		if !whole {
			return nil, fmt.Errorf("ct must be a whole number (mireds), not %s", pdk.JSON(ct))
		}
		state = append(state, pdk.Field{Key: "ct", Value: n})
	default:
		return nil, errors.New(`color needs {"hue", "sat"}, {"xy": [x, y]} or {"ct"}`)
	}
	return apply(req, state)
}

func main() {} // required by Go; the host never calls it
