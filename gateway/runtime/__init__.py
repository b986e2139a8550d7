"""How the gateway runs as a server: uvicorn and its workers, listeners, the HTTP protocol
with its deadlines, draining on SIGTERM, garbage-collector tuning, background rounds."""
