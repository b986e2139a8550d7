"""What a user would run instead of the gateway, serving the same ONNX files (benchmarks)."""
