"""FastAPI routers, one file per resource. Inference is not here: see infer_endpoint."""
