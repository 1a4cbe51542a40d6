// The plugin's Go module. `wasmdeck build` provides wasmdeck.dev/pdk, the
// kit that ships with wasmdeck, through a Go workspace (build/go.work): no
// download, no network. Run `go` commands yourself with GOWORK=build/go.work
// (after a first `wasmdeck build`) so that they find it too.
module {{ident}}

go 1.24

require wasmdeck.dev/pdk v0.0.0
