package pdk

import (
	"math"
	"strings"
	"testing"
)

func TestParseValues(t *testing.T) {
	v, err := Parse([]byte(` {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00", "o": {}} `))
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(map[string]any)
	list := obj["a"].([]any)
	if len(list) != 5 || list[0] != 1.0 || list[1] != -2500.0 || list[2] != true || list[4] != nil {
		t.Fatalf("array: %#v", list)
	}
	if obj["s"] != "x\"\\/\né😀" {
		t.Fatalf("string: %q", obj["s"])
	}
	if len(obj["o"].(map[string]any)) != 0 {
		t.Fatal("empty object")
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	for _, text := range []string{
		``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `[1 2]`, `01`, `1.`, `-`, `1e`, `tru`, `nul`,
		`"abc`, "\"a\x01\"", `"\x"`, `"\u12"`, `{"a":1} x`, `{a:1}`, `1e999`,
		strings.Repeat("[", 300) + strings.Repeat("]", 300),
	} {
		if _, err := Parse([]byte(text)); err == nil {
			t.Errorf("Parse(%q) accepted it", text)
		}
	}
}

func TestLoneSurrogateBecomesReplacement(t *testing.T) {
	v, err := Parse([]byte(`"\ud800x"`))
	if err != nil || v != "\ufffdx" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestMarshal(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{Obj("value", 200, "velocity", int64(100)), `{"value":200,"velocity":100}`},
		{map[string]any{"b": 1, "a": []any{nil, true, 1.5}}, `{"a":[null,true,1.5],"b":1}`},
		{"q\"\\\n\t\x01é\u2028", `"q\"\\\n\t\u0001é` + "\u2028" + `"`},
		{"bad \xff utf8", `"bad ` + "\ufffd" + ` utf8"`},
		{200.0, `200`},
		{1e21, `1e+21`},
		{0.000001, `0.000001`},
		{[]string{"x"}, `["x"]`},
		{RawJSON(`{"raw": 1}`), `{"raw": 1}`},
		{Capability{Kind: "network"}, `"network"`},
		{Capability{Kind: "network", Scope: Obj("hosts", []string{"h"})}, `{"kind":"network","hosts":["h"]}`},
	}
	for _, c := range cases {
		got, err := Marshal(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("Marshal(%#v) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []any{struct{}{}, []byte("x"), math.NaN(), RawJSON("{")} {
		if _, err := Marshal(bad); err == nil {
			t.Errorf("Marshal(%#v) accepted it", bad)
		}
	}
	if JSON(struct{ A int }{}) != "<struct { A int }>" {
		t.Errorf("JSON of a struct: %s", JSON(struct{ A int }{}))
	}
}

func TestMarshalPointers(t *testing.T) {
	n, text, yes, f := 7, "hi", true, 2.5
	big := int64(1) << 60
	obj := Obj("a", 1)
	var anything any = []any{"x", nil}
	var noInt *int
	var noObj *Object
	cases := []struct {
		in   any
		want string
	}{
		{&n, `7`},
		{noInt, `null`},
		{&text, `"hi"`},
		{&yes, `true`},
		{&f, `2.5`},
		{&big, `1152921504606846976`},
		{&obj, `{"a":1}`},
		{noObj, `null`},
		{&anything, `["x",null]`},
		// As fields: optional values of a result.
		{Obj("count", &n, "missing", noInt, "name", (*string)(nil)), `{"count":7,"missing":null,"name":null}`},
		{map[string]any{"p": &text, "q": (*float64)(nil)}, `{"p":"hi","q":null}`},
		{[]any{&n, noInt}, `[7,null]`},
	}
	for _, c := range cases {
		got, err := Marshal(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("Marshal(%#v) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	// A pointer to something Marshal cannot encode is refused, not encoded as its address.
	if _, err := Marshal(&struct{}{}); err == nil {
		t.Error("Marshal(&struct{}{}) accepted it")
	}
	// A pointer to itself, through an any, ends at the depth limit instead of recursing forever.
	var loop any
	loop = &loop
	if _, err := Marshal(loop); err == nil {
		t.Error("Marshal of a pointer cycle accepted it")
	}
}

func TestAsInt(t *testing.T) {
	for _, c := range []struct {
		in any
		ok bool
	}{{1.0, true}, {1.5, false}, {"1", false}, {nil, false}, {float64(1 << 54), false}, {-3.0, true}} {
		if _, ok := AsInt(c.in); ok != c.ok {
			t.Errorf("AsInt(%#v) ok = %v", c.in, ok)
		}
	}
}
