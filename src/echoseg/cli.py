"""The `echoseg` command: a thin dispatcher over subcommand modules in echoseg.commands.

Each module ``echoseg.commands.<name>`` defines ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``echoseg info`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings

from echoseg.errors import EchosegError

COMMANDS: dict[str, str] = {
    "info": "Describe a dataset: layout, patients, images, labels, splits, problems.",
    "models": "List the model presets with parameter counts and GFLOPs.",
    "train": "Train a model from a YAML config.",
    "evaluate": "Score a model or a folder of predictions on a dataset split.",
    "compare": "Compare evaluations: Wilcoxon tests, boxplots, report.",
    "predict": "Segment images, volumes and sequences.",
    "bench": "Measure training or inference speed.",
    "ablate": "Run an ablation study from a plan and write the paper's tables.",
    "demo": "Segment the bundled CAMUS samples and write a small report.",
    "nnunet": "Export a dataset and its split for nnU-Net v2.",
    "export": "Write a model as ONNX or OpenVINO IR (fp32 or int8), checked on real images.",
    "ef": "LV volumes and ejection fraction per patient, and their agreement with a reference.",
    "quality": "Calibrate the quality flag of predictions on a dataset's expert masks.",
}


def _load(name: str):
    return importlib.import_module(f"echoseg.commands.{name}")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; only the subcommand named in ``argv`` gets its options loaded."""
    parser = argparse.ArgumentParser(
        prog="echoseg", description="Segment LV, myocardium and LA in 2D echocardiography.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            try:
                _load(name).add_arguments(p)
            except ModuleNotFoundError as exc:
                if exc.name != f"echoseg.commands.{name}":
                    raise
    return parser


def _version() -> str:
    from echoseg import __version__

    return f"echoseg {__version__}"


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: ``<file>: <reason>`` (e.g. a full disk)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


_shown_warnings: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line ``echoseg: warning: <text>``, each text once per process
    (Python's default prints two lines with a source excerpt)."""
    text = " ".join(str(message).split())
    if text in _shown_warnings:
        return
    _shown_warnings.add(text)
    if not text.startswith("echoseg:"):
        text = f"echoseg: warning: {text}"
    print(text, file=file or sys.stderr, flush=True)


def _quiet_for_users() -> None:
    """Warnings and output as a user sees them, also when ``main`` runs inside another program
    (a test): one-line warnings, no deprecation notices of libraries (meant for developers;
    Python hides them outside ``__main__`` too), and printing that never fails on an
    undecodable file name (its bytes shown as escapes)."""
    warnings.showwarning = _show_warning
    for category in (DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):  # not a text stream
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 partial failure, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_for_users()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        module = _load(args.command)
    except ModuleNotFoundError as exc:
        if exc.name == f"echoseg.commands.{args.command}":
            print(f"echoseg: error: '{args.command}' is not available in this version",
                  file=sys.stderr)
            return 2
        raise
    try:
        return int(module.run(args) or 0)
    except EchosegError as exc:
        print(f"echoseg: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk error that no command turned into a message of its own
        print(f"echoseg: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("echoseg: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("echoseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
