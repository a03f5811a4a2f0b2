"""Model code: checkpoints, pipelines, memory. Never imports grpc."""
