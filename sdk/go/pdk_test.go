package pdk

import "testing"

func setup(t *testing.T, p *Plugin) {
	t.Helper()
	registered, routes, metadata = nil, nil, nil
	Register(p)
	t.Cleanup(func() { registered, routes, metadata = nil, nil, nil })
}

func TestRequestsAreRoutedAndAnswered(t *testing.T) {
	setup(t, &Plugin{
		Name: "t", Version: "1.0.0", Description: "d",
		Actions: []Action{{Name: "echo", Params: `{"type":"object"}`, Run: func(req *Request) (any, error) {
			mode := "none"
			if req.Context.Mode != nil {
				mode = JSON(*req.Context.Mode)
			}
			who, _ := req.String("who")
			return Obj("who", who, "velocity", req.Context.VelocityOr(-1), "mode", mode,
				"at", req.Context.Timestamp), nil
		}}},
	})
	want := `{"name":"t","version":"1.0.0","description":"d","actions":[{"name":"echo","description":"","params":{"type":"object"}}]}`
	if string(metadata) != want {
		t.Fatalf("metadata %s", metadata)
	}
	out, msg, code := run([]byte(`{"action":"echo","params":{"who":"Ann"},"context":{"velocity":null,"mode":2,"timestamp":1732500000123}}`))
	if code != 0 || string(out) != `{"who":"Ann","velocity":-1,"mode":"2","at":1732500000123}` {
		t.Fatalf("got %s %q %d", out, msg, code)
	}
	for request, message := range map[string]string{
		`{"action":"nope"}`:                 `unknown action "nope"`,
		`{"action":"echo","params":[1]}`:    "invalid request: the request's params are not a JSON object",
		`{"params":{}}`:                     "invalid request: the request names no action",
		`[]`:                                "invalid request: the request is not a JSON object",
		`{"action":"echo","params":{"x":}}`: "invalid request: invalid JSON at offset 31: unexpected character '}'",
	} {
		if _, got, code := run([]byte(request)); code != 1 || got != message {
			t.Errorf("run(%s) = %q, %d; want %q", request, got, code, message)
		}
	}
}

func TestHandleServesEveryActionWithoutActions(t *testing.T) {
	setup(t, &Plugin{Name: "t", Version: "1", Description: "d", Handle: func(req *Request) (any, error) {
		return req.Action, nil
	}})
	if out, _, code := run([]byte(`{"action":"anything"}`)); code != 0 || string(out) != "anything" {
		t.Fatalf("got %s %d", out, code)
	}
}

func TestRegisterRefusesMistakes(t *testing.T) {
	for _, p := range []*Plugin{
		{Name: "t", Version: "1"},
		{Name: "t", Version: "1", Description: "d"},
		{Name: "t", Version: "1", Description: "d", Actions: []Action{{Name: "a"}}},
		{Name: "t", Version: "1", Description: "d", Actions: []Action{{Name: "a", Params: "[1]", Run: func(*Request) (any, error) { return nil, nil }}}},
		{Name: "t", Version: "1", Description: "d", Actions: nop, Poll: &Poll{Action: "b", IntervalMS: 20}},
		{Name: "t", Version: "1", Description: "d", Actions: nop, Poll: &Poll{Action: "a", IntervalMS: 5}},
		{Name: "t", Version: "1", Description: "d", Actions: nop, Poll: &Poll{Action: "a", IntervalMS: MaxPollMS + 1}},
		{Name: "t", Version: "1", Description: "d", Handle: nop[0].Run, Poll: &Poll{Action: "", IntervalMS: 20}},
	} {
		if _, _, err := describe(p); err == nil {
			t.Errorf("describe(%+v) accepted it", p)
		}
	}
}

var nop = []Action{{Name: "a", Run: func(*Request) (any, error) { return nil, nil }}}

func TestPollMakesATriggerPlugin(t *testing.T) {
	setup(t, &Plugin{Name: "t", Version: "1", Description: "d", Actions: nop, Poll: &Poll{Action: "a", IntervalMS: 250}})
	want := `{"name":"t","version":"1","description":"d","actions":[{"name":"a","description":""}],"type":"trigger","poll":{"action":"a","interval_ms":250}}`
	if string(metadata) != want {
		t.Fatalf("metadata %s", metadata)
	}
	if _, _, err := describe(&Plugin{Name: "t", Version: "1", Description: "d", Handle: nop[0].Run, Poll: &Poll{Action: "any", IntervalMS: 10}}); err != nil {
		t.Fatalf("a Handle serves any poll action: %v", err)
	}
}

func TestHostCallsOutsideWasmdeckFail(t *testing.T) {
	if _, err := HTTPGet("http://example.com/"); ErrorKind(err) != "unavailable" {
		t.Fatalf("got %v", err)
	}
}
