// {{name}}: a wasmdeck plugin in Go that takes JSON params and returns JSON.
//
//	wasmdeck run build/{{name}}.wasm scale --params '{"max": 254}' --context '{"velocity": 100}'
//	-> {"value":200,"velocity":100}
package main

import (
	"fmt"

	"wasmdeck.dev/pdk"
)

func init() {
	pdk.Register(&pdk.Plugin{
		Name:        "{{name}}",
		Version:     "0.1.0",
		Description: "Scales the trigger's velocity",
		Actions: []pdk.Action{{
			Name:        "scale",
			Description: "Scale the velocity (0-127) to 0..max",
			Params: `{"type":"object","properties":{"max":{"type":"integer","minimum":1}},` +
				`"additionalProperties":false}`,
			Run: scale,
		}},
	})
}

func scale(req *pdk.Request) (any, error) {
	max := int64(127)
	if value, present := req.Param("max"); present {
		n, whole := pdk.AsInt(value)
		if !whole || n < 1 {
			return nil, fmt.Errorf("max must be a positive integer, not %s", pdk.JSON(value))
		}
		max = n
	}
	velocity := int64(req.Context.VelocityOr(127))
	value := (2*velocity*max + 127) / 254 // velocity * max / 127, rounded
	// pdk.Obj keeps the keys in this order: {"value":V,"velocity":v}
	return pdk.Obj("value", value, "velocity", velocity), nil
}

func main() {} // required by Go; the host never calls it
