"""An inference gateway in front of NVIDIA Triton Inference Server.

It speaks the KServe v2 / Open Inference Protocol on Triton's own paths, so stock
`tritonclient` works against it. `gateway.app.create_app` builds the ASGI application;
`gateway.cli` is the `gateway` command.
"""

__version__ = "0.1.0"
