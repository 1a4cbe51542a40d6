// wasmdeck.dev/pdk comes from the Go kit that ships with wasmdeck, through
// the workspace `wasmdeck build` writes (build/go.work).
module hue

go 1.24

require wasmdeck.dev/pdk v0.0.0
