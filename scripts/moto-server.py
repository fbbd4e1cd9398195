"""moto's server, with DynamoDB's per-item atomicity.

moto_server handles requests on many threads and checks a DynamoDB condition
expression, then writes, without a lock: two writers racing on one item can
both pass `attribute_not_exists(seq)` and the second silently overwrites the
first. Real DynamoDB never does (a conditional write is atomic per item), and
the journal's concurrency tests rely on exactly that. So DynamoDB's JSON API
(X-Amz-Target DynamoDB_20120810.*) runs one request at a time here; every
other service, and DynamoDB Streams, stays concurrent.

Usage: python moto-server.py HOST PORT   (the tools venv's python)
"""
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

_dynamodb = threading.Lock()


def serialize_dynamodb(app):
    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_20120810."):
            with _dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialize_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
