"""The ``tilerun`` command line: argument parsing and dispatch to ``tilerun.commands``.

Each subcommand lives in its own module of ``tilerun.commands`` and registers
its parser with ``add_parser(sub)``. Errors print on stderr and return a
non-zero exit code (2 for usage errors and bad arguments, 1 for a model or run
failure), never a traceback: one line, or the whole message when it has
several (e.g. the unsupported ops, one line each, with their nodes);
``TILERUN_CLI_TRACEBACK=1`` re-raises for debugging. Messages go through
``logging`` (``-v`` for the steps, ``-vv`` adds compile stage times and the
plan's size). ``python -m tilerun`` runs the same ``main``.
"""
import argparse
import logging
import os
import sys

from .commands import benchmark, convert, info, profile, run, serve, tune
from .commands.common import CliError, first_line
from .commands.flags import error_text

COMMANDS = (run, benchmark, profile, tune, convert, info, serve)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser():
    """The ``tilerun`` argument parser with every subcommand registered."""
    from . import __version__
    p = _Parser(prog="tilerun", description="CPU inference engine for ONNX models",
                epilog="examples:\n  tilerun run squeezenet\n  tilerun benchmark model.onnx --compare onnxruntime\n"
                       "  tilerun COMMAND --help   (the flags and examples of COMMAND)",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"tilerun {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log the steps (-v); -vv adds compile stage times and the plan's size")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
        parser = sub.choices[module.__name__.rsplit(".", 1)[1]]
        if getattr(module, "EXAMPLES", ()):  # the command's --help ends with its examples
            parser.epilog = "examples:\n" + "\n".join(f"  {e}" for e in module.EXAMPLES)
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


class _LogFormatter(logging.Formatter):
    """``tilerun: message`` for tilerun's records, ``logger.name: message`` for other libraries' (torch, onnxscript)."""

    def format(self, record):
        name = record.name.split(".")[0]
        return f"{'tilerun' if name == 'tilerun' else record.name}: {super().format(record)}"


def _setup_logging(verbose):
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # other libraries: warnings and errors only
    logging.getLogger("tilerun").setLevel(level)


def main(argv=None):
    """Entry point of the ``tilerun`` console script; returns the exit code."""
    p = build_parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error (or --help)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    if args.command is None:
        p.print_help()
        return 0
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"tilerun {args.command}: {error_text(e)}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"tilerun {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except SystemExit as e:
        if isinstance(e.code, str):
            print(first_line(e.code), file=sys.stderr)
            return 2
        return int(e.code or 0)
    except Exception as e:
        if os.environ.get("TILERUN_CLI_TRACEBACK"):
            raise
        from .errors import ArgumentError, TilerunError
        print(f"tilerun {args.command}: {type(e).__name__}: {error_text(e, full=isinstance(e, TilerunError))}",
              file=sys.stderr)
        return 2 if isinstance(e, ArgumentError) else 1


if __name__ == "__main__":
    sys.exit(main())
