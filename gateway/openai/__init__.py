"""The OpenAI-compatible front: `POST /v1/embeddings`, `GET /v1/models[/{id}]`, for the
embedding models a Triton repository exposes (see gateway/pipeline/embeddings.py)."""
