"""What the command line's flags accept, and how errors are put in the flags' words.

``positive_int`` and its siblings are argparse types (a bad value is a usage
error naming the flag); ``check_output_path`` refuses, before any work, an
output file that cannot be written; ``error_text`` gives an exception's whole
message (the unsupported ops one line each, pointing to ``tilerun info
--ops``) and ``flag_syntax`` rewrites an ``ArgumentError`` of the API in the
command line's terms (``--input-shapes ids:1x128``, not a dict). It parses
nothing itself (``tilerun.cli`` does).
"""
import argparse
import os
import re


class CliError(Exception):
    """A user-facing error: the message is printed as one line, the exit code is ``code``."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def add_precision(parser):
    """Add ``--precision {fp32,bf16}`` (``compile_model``'s ``precision``) to ``parser``."""
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="arithmetic of convolutions and weight GEMMs: bf16 multiplies in BF16 and sums in "
                             "FP32 (needs AVX512_BF16; otherwise fp32, as the config says; default fp32)")


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    """argparse type: a number > 0."""
    return _number(text, float, lambda v: v > 0, "a positive number")


def non_negative_float(text):
    """argparse type: a number >= 0."""
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def _number(text, kind, ok, what):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value) or value != value:  # value != value: nan
        raise argparse.ArgumentTypeError(f"expected {what}, given {text!r}")
    return value


def check_output_path(flag, path, suffixes=None):
    """Refuse, before any work, an output ``path`` that cannot be written (or whose suffix is not in ``suffixes``)."""
    if path is None:
        return
    where = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{flag}: {path!r} is a directory; expected a file path")
    if not os.path.isdir(where):
        raise CliError(f"{flag}: directory {where!r} does not exist (given {path!r})")
    if not os.access(where, os.W_OK):
        raise CliError(f"{flag}: directory {where!r} is not writable (given {path!r})")
    if suffixes is not None:
        suffix = os.path.splitext(path)[1].lower().lstrip(".")
        if suffix not in suffixes:
            raise CliError(f"{flag}: expected a file ending in {', '.join('.' + x for x in sorted(suffixes))}, "
                           f"given {path!r}")


MAX_ERROR_LINES = 12  # of an unexpected (non-tilerun) exception's message


def error_text(e, full=True):
    """The message of ``e``; for unsupported ops, the ops and nodes, pointing to ``tilerun info --ops``.

    ``full=False`` (an exception tilerun did not raise on purpose) keeps its
    first ``MAX_ERROR_LINES`` lines.
    """
    from tilerun.errors import ArgumentError, QuantizedModelError, UnsupportedOpError
    text = str(e).strip()
    lines = text.splitlines()
    if not full and len(lines) > MAX_ERROR_LINES:
        text = "\n".join(lines[:MAX_ERROR_LINES] + [f"... {len(lines) - MAX_ERROR_LINES} more lines "
                                                     f"(TILERUN_CLI_TRACEBACK=1 shows the traceback)"])
    if isinstance(e, UnsupportedOpError):
        text = e.summary
        if not isinstance(e, QuantizedModelError):
            text += "\n`tilerun info --ops` lists the supported ops"
    if isinstance(e, ArgumentError):
        text = flag_syntax(text)
    return text.strip()


def one_line(text):
    """``text`` with its lines joined (for a line of a table or a list of skipped cases)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


FLAGS = {"batch_size": "--batch-size", "num_cores": "--num-cores", "num_streams": "--num-streams",
         "input_shapes": "--input-shapes"}


def flag_syntax(text):
    """An ``ArgumentError`` message in the command line's words: ``--input-shapes ids:1x128``, not a dict."""
    def entry(m):
        dims = [d.strip() for d in m.group(2).split(",") if d.strip() and d.strip() != "..."]
        return f"--input-shapes {m.group(1)}:" + ("x".join(dims) if dims else "D1xD2x...")
    # input_shapes={'ids': [...]}  and  input_shapes['ids'] = [1, 128]
    text = re.sub(r"input_shapes=\{'([^']*)': \[([^\]]*)\]\}", entry, text)
    text = re.sub(r"input_shapes\['([^']*)'\] = \[([^\]]*)\]", entry, text)
    text = re.sub(r"input_shapes\['([^']*)'\]", lambda m: f"--input-shapes {m.group(1)}:...", text)
    text = text.replace("pass --input-shapes", "give --input-shapes")
    for name, flag in FLAGS.items():
        text = re.sub(rf"(?<![\w-]){name}(?!\w)", flag, text)
    return text
