"""``strata``: the app and its entry point; every command lives in ``strata.commands`` (one module per area,
each a thin shell over library functions).

Exit codes: 0 success, 1 a stage failed, 2 bad usage or config. Config errors print the field and value.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("py4j", "urllib3", "filelock", "sentence_transformers", "ray", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    _setup_logging(verbose)


# Command groups living in their own modules (strata.commands.<area>.register(app)).
_COMMAND_MODULES = (
    "strata.commands.run",
    "strata.commands.data",
    "strata.commands.embed",
    "strata.commands.evaluate",
    "strata.commands.judge",
    "strata.commands.mine",
    "strata.commands.train",
    "strata.commands.submit",
    "strata.commands.refresh",
    "strata.commands.infra",
)


def _register_commands() -> None:
    import importlib

    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(app)


_register_commands()


def main() -> None:
    """Console entry point. Exits with os._exit after flushing: delta-rs can abort in interpreter
    teardown after a MERGE (rc 134) when the work is already done, which must not fail the job."""
    code = 0
    try:
        rv = app(standalone_mode=False, prog_name="strata")
        code = rv if isinstance(rv, int) else 0  # click returns Exit codes when not standalone
    except typer.Exit as e:
        code = e.exit_code
    except SystemExit as e:  # click usage errors
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001
        # Usage errors (typer vendors its own click, so match by shape, not class): message + their code.
        if hasattr(e, "show") and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            code = e.exit_code
        elif type(e).__name__ == "Abort":
            code = 130
        else:
            console.print_exception(max_frames=8)
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
