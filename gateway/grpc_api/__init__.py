"""The KServe v2 gRPC front (`inference.GRPCInferenceService`), beside the REST one."""
