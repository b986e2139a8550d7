"""The REST front: KServe v2 over HTTP. `infer.py` adapts inference requests to the pipeline
(plain ASGI, the hot path); `routes/` holds everything else as FastAPI routers."""
