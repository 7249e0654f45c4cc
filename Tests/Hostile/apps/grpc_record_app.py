"""A tiny gRPC app that records every call it receives (any service, any method).

Environment:
  APP_PORT        where it listens (127.0.0.1, h2c)
  RECORD_FILE     every call is appended there as one JSON line {"method", "path", "raw_path", "headers"}

Unary calls to any method answer the request bytes back (messages up to 64 MiB), except `dapr.proto.runtime.v1.AppCallback*`
methods, which answer UNIMPLEMENTED (the sidecar's probes: no subscriptions, no bindings).
"""

import json
import os
import threading
from concurrent import futures

import grpc

PORT = int(os.environ["APP_PORT"])
RECORD_FILE = os.environ.get("RECORD_FILE")
LOCK = threading.Lock()


def record(method, metadata):
    if not RECORD_FILE:
        return
    headers = {key: (value if isinstance(value, str) else value.hex()) for key, value in metadata}
    with LOCK, open(RECORD_FILE, "a") as f:
        f.write(json.dumps({"method": method, "path": method, "raw_path": method, "headers": headers}) + "\n")


class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        method = details.method

        def unary(request, context):
            record(method, context.invocation_metadata())
            if "AppCallback" in method:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented")
            return request

        return grpc.unary_unary_rpc_method_handler(unary)


if __name__ == "__main__":
    limit = 64 * 1024 * 1024
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[Handler()],
                         options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
    server.add_insecure_port(f"127.0.0.1:{PORT}")
    server.start()
    server.wait_for_termination()
