"""Model registries as a source of model versions (MLflow's Model Registry)."""
