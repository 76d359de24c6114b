"""HTTP for the REST API: request bodies read as TF Serving's server reads them, JSON answers written back.

`RestHandler` reads ``Content-Length`` and chunked bodies, decodes ``Content-Encoding: gzip``, bounds
every body (413 past ``max_request_bytes``, also once decoded), answers CORS preflights as TF Serving
does and hands the rest to `keras_vae.export.rest_api.RestApi`. `RestServer` is the threading HTTP
server holding that API and the `keras_vae.export.repository.ModelRepository` behind it.

Example:

>>> server = RestServer(repository, "127.0.0.1", 0, max_request_bytes=1 << 20, max_batch_size=64, verbose=False)
>>> threading.Thread(target=server.serve_forever, daemon=True).start()
>>> server.close()                       # stops serving and polling
"""

import re
import traceback
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keras_vae.export.rest_api import RestApi
from keras_vae.export.rest_json import ServingError, dumps

MAX_REQUEST_BYTES = 32 * 1024 * 1024


def _gunzip(data, limit):
    """The decoded gzip body, refused once it passes ``limit`` bytes (a gzip bomb never fills memory)."""
    out = bytearray()
    try:
        while data:
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += decoder.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise ServingError(
                    f"The gzip-encoded request body decodes to more than the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE"
                )
            if not decoder.eof:
                raise zlib.error("truncated gzip data")
            data = decoder.unused_data
    except zlib.error as err:
        # TF Serving reads an undecodable body as empty: keep its message, say why
        raise ServingError(f"JSON Parse error: The document is empty (the gzip body could not be decoded: {err})") from None
    return bytes(out)


class RestHandler(BaseHTTPRequestHandler):
    """TF Serving's REST routes over `RestServer.api`; subclass it to serve more (the studio does)."""

    protocol_version = "HTTP/1.1"
    server_version = "keras-vae-serve"
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped
    # Headers and body go out in separate writes: with Nagle on, each answer waited ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_OPTIONS(self):
        """A CORS preflight: TF Serving answers 200 with an Origin header, 400 without, both with no body."""
        try:
            self._read_body()
        except ServingError:
            pass
        ok = re.search(r"https?://", self.headers.get("Origin", ""))
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self):
        """The request body, de-chunked and gunzipped, at most ``max_request_bytes`` once decoded."""
        limit = self.server.max_request_bytes
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            body = self._read_chunked(limit)
        else:
            body = self._read_sized(limit)
        if "gzip" in self.headers.get("Content-Encoding", ""):
            body = _gunzip(body, limit)
        return body

    def _read_sized(self, limit):
        length = self.headers.get("Content-Length")
        if length is None:
            return b""  # as libevent: no Content-Length and no chunking means no body
        if not length.strip().isdigit():
            self.close_connection = True
            raise ServingError(f"Invalid Content-Length {length!r}.")
        if int(length) > limit:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ServingError(f"Request body of {int(length)} bytes exceeds the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE")
        return self.rfile.read(int(length))

    def _read_chunked(self, limit):
        body = bytearray()
        while size := self._chunk_size():
            if len(body) + size > limit:
                self.close_connection = True
                raise ServingError(f"Request body exceeds the limit of {limit} bytes.", "PAYLOAD_TOO_LARGE")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3).strip():
                self._malformed_chunks()
            body += chunk
        while self.rfile.readline(8192).strip():  # trailer fields, ignored
            pass
        return bytes(body)

    def _chunk_size(self):
        line = self.rfile.readline(1024)
        try:
            return int(line.split(b";")[0].strip(), 16)
        except ValueError:
            self._malformed_chunks()

    def _malformed_chunks(self):
        self.close_connection = True
        raise ServingError("Malformed chunked request body.")

    def _target(self):
        """The path and query TF Serving matches (an absolute-form target loses its scheme and host)."""
        if self.path.startswith("/"):
            return self.path
        parts = urllib.parse.urlsplit(self.path)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _handle(self):
        try:
            body = self._read_body()
            status, payload = self.server.api.handle(self.command, self._target(), body)
        except ServingError as err:
            status, payload = err.http_status, {"error": err.message}
        except Exception as err:  # the server keeps serving whatever one request hit
            self.server.repository.log(traceback.format_exc())
            status, payload = 500, {"error": f"Internal error: {type(err).__name__}: {err}"}
        self._send_json(status, payload)

    def _send_json(self, status, payload):
        data = dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


class RestServer(ThreadingHTTPServer):
    """The HTTP server; ``api`` answers requests, ``repository`` holds the served versions."""

    daemon_threads = True
    # The listen backlog (socketserver's default is 5): a burst of clients beyond it, arriving while the
    # accept loop waits for the GIL, had connections reset.
    request_queue_size = 128

    def __init__(self, repository, host, port, max_request_bytes, max_batch_size, verbose, handler_class=None):
        super().__init__((host, port), handler_class or RestHandler)
        self.repository = repository
        self.api = RestApi(repository, max_batch_size)
        self.max_request_bytes = max_request_bytes
        self.verbose = verbose

    def close(self):
        self.shutdown()
        self.server_close()
        self.repository.stop()

    def serve_until_interrupted(self):
        """Serves until Ctrl-C, then closes the socket and stops polling for versions."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()
            self.repository.stop()
