"""GPU sidecar: loads, swaps and runs diffusers pipelines behind gRPC."""
