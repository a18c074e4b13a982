package place

// DefaultFillPolicy is the policy `gpufleet sim fill` uses unless told otherwise.
const DefaultFillPolicy = "sfgd"
