module github.com/gpufleet/gpufleet

go 1.26.8
