"""``tilerun serve MODEL [MODEL ...]``: serve models over the Open Inference Protocol (REST + gRPC).

Parses the flags, checks that the serve extra is installed (a one-line error
naming ``pip install 'tilerun[serve]'`` otherwise) and hands over to
``tilerun.serve.serve``, which compiles every model before listening and
logs JSON lines on stderr. The server itself lives in ``tilerun.serve``.
"""
from . import common, flags

EXAMPLES = ("tilerun serve squeezenet                     # REST on 127.0.0.1:8000, gRPC on :8001",
            "tilerun serve bert=model.onnx --hint throughput --port 8080",
            "tilerun serve model.onnx --auto-batch 8 --batch-timeout-ms 2 --no-grpc")


def add_parser(sub):
    """Register ``serve`` on the subparsers ``sub``."""
    s = sub.add_parser("serve", help="serve models over KServe v2 / Open Inference Protocol (REST and gRPC)")
    s.add_argument("models", nargs="+", metavar="MODEL",
                   help="ONNX file, NAME=PATH, or light model name; served under NAME or the file's stem")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    s.add_argument("--port", type=int, default=8000, help="REST port (0: any free port; default 8000)")
    s.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (0: any free port; default 8001)")
    s.add_argument("--no-grpc", action="store_true", help="serve REST only")
    s.add_argument("--scheduler", default=None, choices=["single_stream", "multi_stream", "elastic"],
                   help="how requests share the cores (default multi_stream, or what --hint picks)")
    s.add_argument("--hint", default=None, choices=["latency", "throughput"],
                   help="let tilerun pick scheduler, streams and auto-batching per model")
    s.add_argument("--auto-batch", type=int, default=None,
                   help="gather concurrent requests into batched runs of at most N items")
    s.add_argument("--batch-timeout-ms", type=float, default=2.0,
                   help="how long a batch waits for more requests (default 2)")
    s.add_argument("--num-streams", type=int, default=None, help="requests each engine runs at once")
    flags.add_precision(s)
    s.add_argument("--num-cores", type=int, default=None, help="cores to use (default: all usable)")
    s.add_argument("--batch-size", type=int, default=None,
                   help="the largest batch (default: as the model declares; a dynamic batch stays dynamic)")
    s.add_argument("--input-shapes", default=None, help="dynamic dims, e.g. ids:1x128,mask:1x128")
    s.add_argument("--max-queue", type=int, default=64,
                   help="requests per model that may wait for a stream; more get 503 (default 64)")
    s.add_argument("--max-request-mb", type=float, default=64.0,
                   help="largest request body in MiB; larger ones get 413 (default 64)")
    s.add_argument("--grace", type=float, default=30.0,
                   help="seconds shutdown waits for in-flight requests (default 30)")
    s.add_argument("--log-requests", action="store_true", help="log every request, not only errors")
    s.add_argument("--log-format", default="json", choices=["json", "text"],
                   help="log lines as JSON (default) or text")
    s.set_defaults(func=main)


def main(args):
    """Run the ``serve`` command; returns the exit code once the server stopped."""
    try:
        from tilerun.serve import serve
    except ImportError as e:
        raise common.CliError(str(e), code=1) from None
    for flag, value, low in (("--port", args.port, 0), ("--grpc-port", args.grpc_port, 0),
                             ("--max-queue", args.max_queue, 0)):
        if value < low or (flag != "--max-queue" and value > 65535):
            raise common.CliError(f"{flag} must be {'a port number' if 'port' in flag else '>= 0'}, given {value}")
    if args.max_request_mb <= 0:
        raise common.CliError(f"--max-request-mb must be > 0, given {args.max_request_mb}")
    kwargs = dict(batch_size=args.batch_size, input_shapes=common.parse_input_shapes(args.input_shapes),
                  num_cores=args.num_cores, num_streams=args.num_streams,
                  scheduler=args.scheduler or (None if args.hint else "multi_stream"), hint=args.hint,
                  auto_batch=args.auto_batch, batch_timeout_ms=args.batch_timeout_ms, precision=args.precision)
    try:
        serve(args.models, host=args.host, port=args.port, grpc_port=None if args.no_grpc else args.grpc_port,
              max_queue=args.max_queue, max_request_bytes=int(args.max_request_mb * (1 << 20)), grace_s=args.grace,
              log_requests=args.log_requests, log_format=args.log_format, **kwargs)
    except ValueError as e:
        raise common.CliError(common.first_line(e)) from None
    except OSError as e:
        raise common.CliError(common.first_line(e), code=1) from None
    return 0
