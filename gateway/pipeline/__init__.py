"""The inference pipeline every front calls: capacity, access (key, scope, rate limit), the
key's share, the data plane (cache or Triton), shadowing, the request's span and metrics."""
