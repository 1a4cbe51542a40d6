// {{name}}: a minimal wasmdeck plugin in Go. Build it with `wasmdeck build`.
package main

import "wasmdeck.dev/pdk"

func init() {
	pdk.Register(&pdk.Plugin{
		Name:        "{{name}}",
		Version:     "0.1.0",
		Description: "A minimal wasmdeck plugin",
		Actions: []pdk.Action{
			{Name: "hello", Description: "Say hello", Run: hello},
		},
	})
}

func hello(req *pdk.Request) (any, error) {
	return "hello from {{name}}", nil
}

// main is required by Go but never called: the plugin is a library the
// host calls into (a WebAssembly reactor).
func main() {}
