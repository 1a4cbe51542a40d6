package pdk

// The host functions of docs/host-api.md, as Go functions. Each returns
// the parsed response, or an error: a *HostError when the host refused or
// failed the request (its Kind says why, e.g. "denied" without a grant).

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// HostError is a host call that failed: {"error": {"kind", "message"}}.
type HostError struct {
	Kind    string // denied, invalid_request, timeout, connection, tls, too_large, ...
	Message string
}

func (e *HostError) Error() string {
	if e.Message == "" {
		return e.Kind
	}
	return e.Message
}

// ErrorKind returns the Kind of a *HostError in err's chain, or "".
func ErrorKind(err error) string {
	var hostErr *HostError
	if errors.As(err, &hostErr) {
		return hostErr.Kind
	}
	return ""
}

// callHost sends a JSON request to a host function and parses its answer.
func callHost(fn hostFunc, request Object) (map[string]any, error) {
	body, err := Marshal(request)
	if err != nil {
		return nil, err
	}
	raw, err := rawCall(fn, body)
	if err != nil {
		return nil, err
	}
	v, err := Parse(raw)
	if err != nil {
		return nil, &HostError{Kind: "invalid_response", Message: "the host's response: " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &HostError{Kind: "invalid_response", Message: "the host's response is not an object"}
	}
	if failure, ok := obj["error"].(map[string]any); ok {
		kind, _ := failure["kind"].(string)
		message, _ := failure["message"].(string)
		if kind == "" {
			kind = "error"
		}
		return nil, &HostError{Kind: kind, Message: message}
	}
	return obj, nil
}

// textOrBase64 reads the field name (text) or name_base64 (bytes) of obj.
func textOrBase64(obj map[string]any, name string) ([]byte, bool, error) {
	if s, ok := obj[name].(string); ok {
		return []byte(s), true, nil
	}
	if s, ok := obj[name+"_base64"].(string); ok {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, false, &HostError{Kind: "invalid_response", Message: name + "_base64 is not base64"}
		}
		return b, true, nil
	}
	return nil, false, nil
}

// withBytes adds b to a request as the text field name, or as
// name_base64 when b is not UTF-8.
func withBytes(request Object, name string, b []byte) Object {
	if utf8.Valid(b) {
		return append(request, Field{name, string(b)})
	}
	return append(request, Field{name + "_base64", base64.StdEncoding.EncodeToString(b)})
}

// ---- logging -----------------------------------------------------------

// Level is a log level.
type Level int32

const (
	LevelDebug   Level = 0
	LevelInfo    Level = 1
	LevelWarning Level = 2
	LevelError   Level = 3
)

// Log sends one message to the plugin's log on the host.
func Log(level Level, message string) { writeLog(level, message) }

// Logf formats a message (as fmt.Sprintf) and logs it.
func Logf(level Level, format string, args ...any) {
	writeLog(level, fmt.Sprintf(format, args...))
}

// ---- configuration -------------------------------------------------------

// Config returns the configuration value named key, nil when unset.
func Config(key string) (any, error) {
	response, err := callHost(hostConfigGet, Obj("key", key))
	if err != nil {
		return nil, err
	}
	return response["value"], nil
}

// ConfigString returns the configuration value named key when it is a
// string (ok is false when it is unset, not a string, or unreadable).
func ConfigString(key string) (value string, ok bool) {
	v, err := Config(key)
	if err != nil {
		return "", false
	}
	value, ok = v.(string)
	return value, ok
}

// ConfigAll returns the plugin's whole configuration.
func ConfigAll() (map[string]any, error) {
	response, err := callHost(hostConfigGet, Object{})
	if err != nil {
		return nil, err
	}
	all, _ := response["value"].(map[string]any)
	if all == nil {
		all = map[string]any{}
	}
	return all, nil
}

// ---- HTTP (capability network) -------------------------------------------

// HTTPRequest is one HTTP request for the host to make.
type HTTPRequest struct {
	Method  string      // default GET
	URL     string      // must match a network grant
	Headers [][2]string // name, value pairs
	Body    []byte
	// TimeoutMS bounds the request (0: what remains of the call's time).
	TimeoutMS int
	// NoRedirects keeps the host from following redirects.
	NoRedirects bool
}

// HTTPResponse is the host's answer.
type HTTPResponse struct {
	Status  int
	Reason  string
	Headers [][2]string
	URL     string // after redirects
	Body    []byte
}

// Text returns the body as a string.
func (r *HTTPResponse) Text() string { return string(r.Body) }

// JSON parses the body as JSON (see Parse).
func (r *HTTPResponse) JSON() (any, error) { return Parse(r.Body) }

// Header returns the first value of the named header ("" if absent),
// matching the name without regard to case.
func (r *HTTPResponse) Header(name string) string {
	for _, h := range r.Headers {
		if equalFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// HTTP makes an HTTP request through the host.
func HTTP(req HTTPRequest) (*HTTPResponse, error) {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	request := Obj("method", method, "url", req.URL)
	if len(req.Headers) > 0 {
		headers := make([]any, len(req.Headers))
		for i, h := range req.Headers {
			headers[i] = []string{h[0], h[1]}
		}
		request = append(request, Field{"headers", headers})
	}
	if req.Body != nil {
		request = withBytes(request, "body", req.Body)
	}
	if req.TimeoutMS > 0 {
		request = append(request, Field{"timeout_ms", req.TimeoutMS})
	}
	if req.NoRedirects {
		request = append(request, Field{"follow_redirects", false})
	}
	response, err := callHost(hostHTTPRequest, request)
	if err != nil {
		return nil, err
	}
	status, _ := AsInt(response["status"])
	out := &HTTPResponse{Status: int(status)}
	out.Reason, _ = response["reason"].(string)
	out.URL, _ = response["url"].(string)
	if list, ok := response["headers"].([]any); ok {
		for _, item := range list {
			if pair, ok := item.([]any); ok && len(pair) == 2 {
				name, _ := pair[0].(string)
				value, _ := pair[1].(string)
				out.Headers = append(out.Headers, [2]string{name, value})
			}
		}
	}
	if out.Body, _, err = textOrBase64(response, "body"); err != nil {
		return nil, err
	}
	return out, nil
}

// HTTPGet GETs url.
func HTTPGet(url string) (*HTTPResponse, error) {
	return HTTP(HTTPRequest{URL: url})
}

// HTTPSendJSON sends body as JSON (encoded by Marshal; a string, []byte
// or RawJSON is sent as it is) with the given method, adding
// Content-Type: application/json.
func HTTPSendJSON(method, url string, body any) (*HTTPResponse, error) {
	var encoded []byte
	switch b := body.(type) {
	case string:
		encoded = []byte(b)
	case []byte:
		encoded = b
	case RawJSON:
		encoded = b
	default:
		var err error
		if encoded, err = Marshal(body); err != nil {
			return nil, err
		}
	}
	return HTTP(HTTPRequest{
		Method:  method,
		URL:     url,
		Headers: [][2]string{{"Content-Type", "application/json"}},
		Body:    encoded,
	})
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ---- WebSocket (capability network) --------------------------------------

// WebSocket is a connection the host holds for this plugin instance; it
// stays open between calls until closed.
type WebSocket struct {
	ID          int64
	Subprotocol string // what the server chose, or ""
}

// WSOptions are the optional parts of WSConnect.
type WSOptions struct {
	Subprotocols []string
	Headers      map[string]string
	TimeoutMS    int
}

// WSMessage is what Recv got: a text or binary message, a timeout, or the
// connection's close.
type WSMessage struct {
	Text    string
	Data    []byte
	Binary  bool
	Timeout bool
	Closed  bool
	Code    int // the close code, when Closed
	Reason  string
}

// WSConnect opens a WebSocket (opts may be nil).
func WSConnect(url string, opts *WSOptions) (*WebSocket, error) {
	request := Obj("url", url)
	if opts != nil {
		if len(opts.Subprotocols) > 0 {
			request = append(request, Field{"subprotocols", opts.Subprotocols})
		}
		if len(opts.Headers) > 0 {
			request = append(request, Field{"headers", opts.Headers})
		}
		if opts.TimeoutMS > 0 {
			request = append(request, Field{"timeout_ms", opts.TimeoutMS})
		}
	}
	response, err := callHost(hostWSConnect, request)
	if err != nil {
		return nil, err
	}
	id, ok := AsInt(response["id"])
	if !ok {
		return nil, &HostError{Kind: "invalid_response", Message: "ws_connect answered no id"}
	}
	ws := &WebSocket{ID: id}
	ws.Subprotocol, _ = response["subprotocol"].(string)
	return ws, nil
}

// SendText sends a text message.
func (ws *WebSocket) SendText(text string) error {
	_, err := callHost(hostWSSend, Obj("id", ws.ID, "text", text))
	return err
}

// SendBinary sends a binary message.
func (ws *WebSocket) SendBinary(b []byte) error {
	_, err := callHost(hostWSSend, Obj("id", ws.ID, "data_base64", base64.StdEncoding.EncodeToString(b)))
	return err
}

// Recv waits up to timeoutMS for the next message (0: the host's default).
func (ws *WebSocket) Recv(timeoutMS int) (*WSMessage, error) {
	request := Obj("id", ws.ID)
	if timeoutMS > 0 {
		request = append(request, Field{"timeout_ms", timeoutMS})
	}
	response, err := callHost(hostWSRecv, request)
	if err != nil {
		return nil, err
	}
	msg := &WSMessage{}
	msg.Timeout, _ = response["timeout"].(bool)
	msg.Closed, _ = response["closed"].(bool)
	if msg.Closed {
		code, _ := AsInt(response["code"])
		msg.Code = int(code)
		msg.Reason, _ = response["reason"].(string)
		return msg, nil
	}
	if text, ok := response["text"].(string); ok {
		msg.Text = text
	} else if encoded, ok := response["data_base64"].(string); ok {
		if msg.Data, err = base64.StdEncoding.DecodeString(encoded); err != nil {
			return nil, &HostError{Kind: "invalid_response", Message: "data_base64 is not base64"}
		}
		msg.Binary = true
	}
	return msg, nil
}

// Close closes the connection.
func (ws *WebSocket) Close() error {
	_, err := callHost(hostWSClose, Obj("id", ws.ID))
	return err
}

// ---- processes (capability process) --------------------------------------

// ProcessResult is how a program ended.
type ProcessResult struct {
	ExitCode  int
	Stdout    string
	Stderr    string
	Truncated bool // output passed the host's limit
}

// ProcessRun runs argv (no shell) with stdin as its input; timeoutMS 0
// means what remains of the call's time.
func ProcessRun(argv []string, stdin string, timeoutMS int) (*ProcessResult, error) {
	request := Obj("argv", argv)
	if stdin != "" {
		request = append(request, Field{"stdin", stdin})
	}
	if timeoutMS > 0 {
		request = append(request, Field{"timeout_ms", timeoutMS})
	}
	response, err := callHost(hostProcessRun, request)
	if err != nil {
		return nil, err
	}
	code, _ := AsInt(response["exit_code"])
	result := &ProcessResult{ExitCode: int(code)}
	result.Truncated, _ = response["truncated"].(bool)
	stdout, _, err := textOrBase64(response, "stdout")
	if err != nil {
		return nil, err
	}
	stderr, _, err := textOrBase64(response, "stderr")
	if err != nil {
		return nil, err
	}
	result.Stdout, result.Stderr = string(stdout), string(stderr)
	return result, nil
}

// ---- key-value state (capability kv) -------------------------------------

// KVGet reads key; found is false when it has no value.
func KVGet(key string) (value []byte, found bool, err error) {
	response, err := callHost(hostKVGet, Obj("key", key))
	if err != nil {
		return nil, false, err
	}
	return textOrBase64(response, "value")
}

// KVSet stores value under key.
func KVSet(key string, value []byte) error {
	_, err := callHost(hostKVSet, withBytes(Obj("key", key), "value", value))
	return err
}

// KVDelete removes key; deleted says whether it had a value.
func KVDelete(key string) (deleted bool, err error) {
	response, err := callHost(hostKVDelete, Obj("key", key))
	if err != nil {
		return false, err
	}
	deleted, _ = response["deleted"].(bool)
	return deleted, nil
}

// KVList returns the keys that start with prefix.
func KVList(prefix string) ([]string, error) {
	response, err := callHost(hostKVList, Obj("prefix", prefix))
	if err != nil {
		return nil, err
	}
	list, _ := response["keys"].([]any)
	keys := make([]string, 0, len(list))
	for _, item := range list {
		if key, ok := item.(string); ok {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// ---- events (capability events:publish:PATTERN) ---------------------------

// EventPublish publishes payload (any JSON value) on topic; delivered is how
// many subscribers it was queued for.
func EventPublish(topic string, payload any) (delivered int, err error) {
	response, err := callHost(hostEventPublish, Obj("topic", topic, "payload", payload))
	if err != nil {
		return 0, err
	}
	n, _ := response["delivered"].(float64)
	return int(n), nil
}

// ---- other plugins (capability plugins:NAME[:ACTION]) ---------------------

// PluginCall runs another plugin's action with params (an Object or a
// map[string]any; nil for none); its output. A call that would come back
// around to a plugin in the chain fails with the kind "cycle", one too deep
// with "depth".
func PluginCall(plugin, action string, params any) ([]byte, error) {
	if params == nil {
		params = Object{}
	}
	response, err := callHost(hostPluginCall, Obj("plugin", plugin, "action", action, "params", params))
	if err != nil {
		return nil, err
	}
	output, _, err := textOrBase64(response, "output")
	return output, err
}

// ---- shared state (capability state:NAMESPACE[:ro]) -----------------------

// StateGet reads key of the shared namespace; version is 0 when absent.
func StateGet(namespace, key string) (value []byte, version int64, err error) {
	response, err := callHost(hostStateGet, Obj("namespace", namespace, "key", key))
	if err != nil {
		return nil, 0, err
	}
	value, _, err = textOrBase64(response, "value")
	v, _ := response["version"].(float64)
	return value, int64(v), err
}

// StateSet stores value under key. With version >= 0 it is a compare-and-swap:
// stored only if the key still has that version (0: only if absent); pass -1
// to store unconditionally. Returns whether it was stored and the version now.
func StateSet(namespace, key string, value []byte, version int64) (stored bool, now int64, err error) {
	request := withBytes(Obj("namespace", namespace, "key", key), "value", value)
	if version >= 0 {
		request = append(request, Field{"version", version})
	}
	response, err := callHost(hostStateSet, request)
	if err != nil {
		return false, 0, err
	}
	stored, _ = response["ok"].(bool)
	v, _ := response["version"].(float64)
	return stored, int64(v), nil
}

// StateDelete removes key (with version >= 0: only if it still has it).
func StateDelete(namespace, key string, version int64) (deleted bool, err error) {
	request := Obj("namespace", namespace, "key", key)
	if version >= 0 {
		request = append(request, Field{"version", version})
	}
	response, err := callHost(hostStateDelete, request)
	if err != nil {
		return false, err
	}
	deleted, _ = response["deleted"].(bool)
	return deleted, nil
}

// StateList returns the keys of the shared namespace that start with prefix.
func StateList(namespace, prefix string) ([]string, error) {
	response, err := callHost(hostStateList, Obj("namespace", namespace, "prefix", prefix))
	if err != nil {
		return nil, err
	}
	list, _ := response["keys"].([]any)
	keys := make([]string, 0, len(list))
	for _, item := range list {
		if key, ok := item.(string); ok {
			keys = append(keys, key)
		}
	}
	return keys, nil
}
