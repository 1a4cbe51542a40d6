module wasmdeck.dev/pdk

go 1.24
