"""GPU model host: loads, swaps and runs diffusers pipelines behind gRPC."""
