// go-hostcalls: the Go kit's host helpers, one action each, for tests/test_pdk_go.py.
package main

import (
	"errors"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:         "go-hostcalls",
		Version:      "0.1.0",
		Description:  "Calls the host APIs through the Go kit",
		Capabilities: []pdk.Capability{{Kind: "network"}, {Kind: "kv"}},
		Actions: []pdk.Action{
			{Name: "kv", Description: "kv_set, then kv_get: the value read back", Run: kv},
			{Name: "config", Description: "A configuration value, as text", Run: config},
			{Name: "http-get", Description: "GET a URL: status and body", Run: httpGet},
			{Name: "log", Description: "Log a message at warning level", Run: logMessage},
			{Name: "denied", Description: "GET without a grant: the error's kind", Run: denied},
			{Name: "kv-more", Description: "kv_list and kv_delete", Run: kvMore},
		},
	})
}

func param(req *pdk.Request, name string) (string, error) {
	value, ok := req.String(name)
	if !ok {
		return "", errors.New("params need a string '" + name + "'")
	}
	return value, nil
}

func kv(req *pdk.Request) (any, error) {
	key, err := param(req, "key")
	if err != nil {
		return nil, err
	}
	value, err := param(req, "value")
	if err != nil {
		return nil, err
	}
	if err := pdk.KVSet(key, []byte(value)); err != nil {
		return nil, err
	}
	got, found, err := pdk.KVGet(key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("kv_get found nothing after kv_set")
	}
	return string(got), nil
}

func kvMore(req *pdk.Request) (any, error) {
	prefix, _ := req.String("prefix")
	keys, err := pdk.KVList(prefix)
	if err != nil {
		return nil, err
	}
	deleted := []any{}
	for _, key := range keys {
		ok, err := pdk.KVDelete(key)
		if err != nil {
			return nil, err
		}
		deleted = append(deleted, ok)
	}
	_, found, err := pdk.KVGet("absent")
	if err != nil {
		return nil, err
	}
	return pdk.Obj("keys", keys, "deleted", deleted, "absent_found", found), nil
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
	if text, ok := value.(string); ok {
		return text, nil
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

func main() {}
