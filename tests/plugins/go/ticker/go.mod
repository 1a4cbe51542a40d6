module ticker

go 1.24

require wasmdeck.dev/pdk v0.0.0
