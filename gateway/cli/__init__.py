"""The `gateway` command (`main.py`) and its `keys` and `models` groups."""
