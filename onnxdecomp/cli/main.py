"""The ``onnxdecomp`` command group: thin; each command parses, calls the API and prints.

Every command ends with a PASSED or FAILED line (Polygraphy style); ``--json`` prints one
JSON object instead of the tables (on an error: ``passed`` false, ``error``,
``exit_code``). A user error, raised anywhere below, is caught once here: one ``error:``
line naming the command's own flags, FAILED, and the error kind's exit code (1 for the
user's input, 3 an unsupported model, 4 the runtime, 5 a bug; README "Errors").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading

import click

from onnxdecomp.cli.check import check_cmd
from onnxdecomp.cli.decompose import decompose_cmd
from onnxdecomp.cli.eval import eval_cmd
from onnxdecomp.cli.inspect import inspect_cmd
from onnxdecomp.cli.link import link_cmd
from onnxdecomp.cli.replace import replace_cmd
from onnxdecomp.errors import INTERNAL_EXIT, OnnxDecompError, first_line
from onnxdecomp.version import __version__

BROKEN_PIPE_EXIT = 128 + 13  # as a shell reports a command that SIGPIPE ended


class _Main(click.Group):
    """The command group, with the one handler of errors: one ``error:`` line, FAILED, the
    error kind's exit code; a traceback only with ``--debug``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self.as_json = "--json" in args  # a failure then prints its JSON object too
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.ClickException as exc:  # the group's own: a bad option
            self._usage_error(exc)

    def _usage_error(self, exc: click.exceptions.ClickException) -> None:
        """Click's usage message, then FAILED as every failure ends (exit 2); with --json
        the JSON object on stdout too."""
        if getattr(self, "as_json", False):
            click.echo(json.dumps({"passed": False, "error": exc.format_message(),
                                   "exit_code": exc.exit_code}))
        exc.show()
        click.echo("FAILED", err=True)
        sys.exit(exc.exit_code)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:  # a usage error
            self._usage_error(exc)
        except (click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # stdout closed early (``| head``): no more to say
            with contextlib.suppress(OSError, ValueError):  # nor at exit's flush
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(BROKEN_PIPE_EXIT)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM, the outputs' cleanup unwound
            term = isinstance(exc, _Terminated)
            self._fail(f"error: interrupted{' (SIGTERM)' if term else ''}; the outputs are as "
                       "they were", 128 + (signal.SIGTERM if term else signal.SIGINT))
        except OnnxDecompError as exc:
            if ctx.params.get("debug"):
                raise
            command = self.get_command(ctx, ctx.invoked_subcommand or "")
            self._fail(f"error: {exc.render(_flag_speller(command))}", exc.exit_code)
        except Exception as exc:  # a bug: still one line, the traceback on request
            if ctx.params.get("debug"):
                raise
            self._fail(f"error: internal error, {type(exc).__name__}: {first_line(exc)} (run "
                       "with onnxdecomp --debug for the traceback)", INTERNAL_EXIT)

    def _fail(self, line: str, code: int) -> None:
        """The error line and FAILED on stderr; with --json, its object on stdout too."""
        if getattr(self, "as_json", False):
            click.echo(json.dumps({"passed": False, "error": line.removeprefix("error: "),
                                   "exit_code": code}))
        click.echo(line, err=True)
        click.echo("FAILED", err=True)
        sys.exit(code)


def _flag_speller(command: click.Command | None):
    """Spell an API parameter the way this command's user typed it: ``keep`` -> ``--keep``."""
    flags = {}
    for param in command.params if command else ():
        if isinstance(param, click.Option):
            longs = [o for o in param.opts if o.startswith("--")]
            flags[param.name] = (longs or param.opts)[0]
            for flag in longs:  # an option stored under another name (link's --calibrate)
                flags.setdefault(flag[2:].replace("-", "_"), flag)
    return lambda name: flags.get(name, name)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxdecomp")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def main(debug: bool) -> None:
    """Cut ONNX classifiers into one smaller module per class, and link modules into models."""
    # SIGTERM unwinds like Ctrl-C, so half-written outputs are removed on the way out.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: one path for both, the cleanup, then one
    error line."""


def _terminated(*_) -> None:
    raise _Terminated


for _command in (eval_cmd, inspect_cmd, decompose_cmd, link_cmd, replace_cmd, check_cmd):
    main.add_command(_command)
