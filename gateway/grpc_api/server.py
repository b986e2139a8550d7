"""The gRPC server of one gateway worker: `inference.GRPCInferenceService` on
GATEWAY_GRPC_PORT, beside the HTTP server, in every worker (each binds the port with
SO_REUSEPORT, as the HTTP listeners do, and the kernel spreads connections).

Limits as on REST: a message over GATEWAY_MAX_BODY_BYTES is refused (RESOURCE_EXHAUSTED);
the per-key shares and the worker's capacity are the pipeline's, as on REST. Per connection,
at most GATEWAY_GRPC_MAX_STREAMS streams at once (advertised as HTTP/2's
MAX_CONCURRENT_STREAMS; grpc core refuses streams past it and counts a client that keeps
opening them, rapid resets included, as abusive); per worker, at most
GATEWAY_GRPC_MAX_CALLS calls at once, past which a call is RESOURCE_EXHAUSTED at once
(before, one connection opened 16,064 never-read streams and RSS doubled);
keepalive pings every GATEWAY_GRPC_KEEPALIVE_S find dead clients; TLS with the HTTP
server's certificate (GATEWAY_TLS_CERT_FILE); on shutdown, calls in progress get
GATEWAY_SHUTDOWN_GRACE_S to finish.
"""

from __future__ import annotations

import grpc
from tritonclient.grpc import service_pb2_grpc

from gateway.grpc_api.service import InferenceService
from gateway.observability.access_log import AccessLog
from gateway.runtime.draining import Drain
from gateway.services import Services

MAX_RESPONSE_BYTES = 1 << 30


async def start_grpc_server(
    services: Services, drain: Drain, access_log: AccessLog | None, host: str, port: int
) -> grpc.aio.Server:
    settings = services.settings
    keepalive_ms = int(settings.grpc_keepalive_s * 1000)
    server = grpc.aio.server(
        maximum_concurrent_rpcs=settings.grpc_max_calls,
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_concurrent_streams", settings.grpc_max_streams),
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceService(services, drain, access_log), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if settings.tls_cert_file and settings.tls_key_file:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    await server.start()
    return server
