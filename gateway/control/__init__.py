"""The control plane: what the gateway knows of Triton's models (`catalog.py`), their life
cycle (`lifecycle/`), an MLflow registry as a source (`registry/`), the changes replicas tell
each other (`model_changes.py`) and seeding a shared repository (`repository_seed.py`)."""
