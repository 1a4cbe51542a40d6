// go-hostcalls: the Go kit's host helpers, one action each: the hostcalls
// contract of tests/test_pdk_hostcalls.py, which calls them against the real
// host (tests/test_pdk_go.py tests what only Go has).
package main

import (
	"bytes"
	"errors"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "go-hostcalls",
		Version:      "0.1.0",
		Description:  "Calls the host APIs through the Go kit",
		Capabilities: []pdk.Capability{{Kind: "kv"}, {Kind: "network"}, {Kind: "process"}},
		Actions: []pdk.Action{
			{Name: "kv", Description: "kv_set (when a value is given), then kv_get", Run: kv},
			{Name: "kv-more", Description: "binary values, kv_list, kv_delete", Run: kvMore},
			{Name: "config", Description: "A configuration value, as text", Run: config},
			{Name: "http-get", Description: "GET a URL: status and body", Run: httpGet},
			{Name: "http-post", Description: "POST JSON to a URL", Run: httpPost},
			{Name: "log", Description: "Log a message at warning level", Run: logMessage},
			{Name: "denied", Description: "GET without a grant: the error's kind", Run: denied},
			{Name: "fail-host", Description: "GET without a grant, not handled", Run: failHost},
			{Name: "process", Description: "Run a program", Run: process},
			{Name: "ws-echo", Description: "A WebSocket session with an echo server", Run: wsEcho},
			{Name: "context", Description: "The request as the kit parsed it", Run: context},
			{Name: "count", Description: "State kept between calls", Run: count},
		},
	})
}

var calls int

func param(req *pdk.Request, name string) (string, error) {
	value, ok := req.String(name)
	if !ok {
		return "", errors.New("'" + name + "' must be a string")
	}
	return value, nil
}

func kv(req *pdk.Request) (any, error) {
	key, err := param(req, "key")
	if err != nil {
		return nil, err
	}
	if given, _ := req.Param("value"); given != nil {
		value, err := param(req, "value")
		if err != nil {
			return nil, err
		}
		if err := pdk.KVSet(key, []byte(value)); err != nil {
			return nil, err
		}
	}
	got, found, err := pdk.KVGet(key)
	if err != nil {
		return nil, err
	}
	if !found {
		return "(none)", nil
	}
	return got, nil
}

func kvMore(req *pdk.Request) (any, error) {
	binary := []byte{0, 0xff, 0xfe, 'x'}
	if err := pdk.KVSet("bin", binary); err != nil {
		return nil, err
	}
	if err := pdk.KVSet("other", []byte("text")); err != nil {
		return nil, err
	}
	back, _, err := pdk.KVGet("bin")
	if err != nil {
		return nil, err
	}
	keys, err := pdk.KVList("")
	if err != nil {
		return nil, err
	}
	prefixed, err := pdk.KVList("b")
	if err != nil {
		return nil, err
	}
	deleted, err := pdk.KVDelete("other")
	if err != nil {
		return nil, err
	}
	again, err := pdk.KVDelete("other")
	if err != nil {
		return nil, err
	}
	_, found, err := pdk.KVGet("other")
	if err != nil {
		return nil, err
	}
	return pdk.Obj("same", bytes.Equal(back, binary), "keys", keys, "prefixed", prefixed,
		"deleted", deleted, "again", again, "gone", !found), nil
}

func config(req *pdk.Request) (any, error) {
	key, err := param(req, "key")
	if err != nil {
		return nil, err
	}
	value, err := pdk.Config(key)
	if err != nil {
		return nil, err
	}
	switch v := value.(type) {
	case nil:
		return "(unset)", nil
	case string:
		return v, nil
	}
	return pdk.JSON(value), nil
}

func httpGet(req *pdk.Request) (any, error) {
	url, err := param(req, "url")
	if err != nil {
		return nil, err
	}
	response, err := pdk.HTTPGet(url)
	if err != nil {
		return nil, err
	}
	return pdk.Obj("status", response.Status, "body", response.Text()), nil
}

func httpPost(req *pdk.Request) (any, error) {
	url, err := param(req, "url")
	if err != nil {
		return nil, err
	}
	response, err := pdk.HTTPSendJSON("POST", url, pdk.Obj("on", true))
	if err != nil {
		return nil, err
	}
	reply, err := response.JSON()
	if err != nil {
		return nil, err
	}
	kind := response.Header("content-type")
	if kind == "" {
		kind = "?"
	}
	return pdk.Obj("status", response.Status, "reply", reply, "type", kind), nil
}

func logMessage(req *pdk.Request) (any, error) {
	message, err := param(req, "message")
	if err != nil {
		return nil, err
	}
	pdk.Log(pdk.LevelWarning, message)
	return "logged", nil
}

func denied(req *pdk.Request) (any, error) {
	_, err := pdk.HTTPGet("http://127.0.0.1:1/")
	if err == nil {
		return nil, errors.New("the host allowed a request it should have denied")
	}
	return pdk.ErrorKind(err), nil
}

func failHost(req *pdk.Request) (any, error) {
	_, err := pdk.HTTPGet("http://127.0.0.1:1/")
	return nil, err
}

func process(req *pdk.Request) (any, error) {
	list, _ := req.Param("argv")
	items, ok := list.([]any)
	if !ok {
		return nil, errors.New("'argv' must be a list")
	}
	argv := make([]string, 0, len(items))
	for _, item := range items {
		arg, ok := item.(string)
		if !ok {
			return nil, errors.New("'argv' must be a list of strings")
		}
		argv = append(argv, arg)
	}
	result, err := pdk.ProcessRun(argv, "", 5000)
	if err != nil {
		return nil, err
	}
	return pdk.Obj("exit_code", result.ExitCode, "stdout", result.Stdout,
		"stderr", result.Stderr, "truncated", result.Truncated), nil
}

func wsEcho(req *pdk.Request) (any, error) {
	url, err := param(req, "url")
	if err != nil {
		return nil, err
	}
	text, err := param(req, "text")
	if err != nil {
		return nil, err
	}
	ws, err := pdk.WSConnect(url, &pdk.WSOptions{Subprotocols: []string{"echo.v1"}})
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	if err := ws.SendText(text); err != nil {
		return nil, err
	}
	echoed, err := ws.Recv(2000)
	if err != nil {
		return nil, err
	}
	sent := []byte{1, 2, 0xff}
	if err := ws.SendBinary(sent); err != nil {
		return nil, err
	}
	binary, err := ws.Recv(2000)
	if err != nil {
		return nil, err
	}
	if err := ws.SendText("bye"); err != nil {
		return nil, err
	}
	closed, err := ws.Recv(2000)
	if err != nil {
		return nil, err
	}
	after := "sent"
	if err := ws.SendText("anyone?"); err != nil {
		after = pdk.ErrorKind(err)
	}
	size := 0
	if binary.Binary && bytes.Equal(binary.Data, sent) {
		size = len(binary.Data)
	}
	var code any
	if closed.Closed {
		code = closed.Code
	}
	return pdk.Obj("subprotocol", ws.Subprotocol, "text", echoed.Text, "binary", size,
		"closed", code, "after", after), nil
}

func context(req *pdk.Request) (any, error) {
	var velocity, mode any
	if req.Context.Velocity != nil {
		velocity = *req.Context.Velocity
	}
	if req.Context.Mode != nil {
		mode = *req.Context.Mode
	}
	return pdk.Obj("action", req.Action, "velocity", velocity, "mode", mode,
		"timestamp", req.Context.Timestamp, "params", req.Params), nil
}

func count(req *pdk.Request) (any, error) {
	calls++
	return pdk.Obj("calls", calls), nil
}

func main() {}
