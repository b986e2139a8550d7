"""FastAPI routers, one file per resource. Inference is not here: see gateway/rest/infer.py."""
