"""`make run`: `chalice local` with the given options, stopped in one line.

Ctrl-C (and SIGTERM, which app.py makes a Ctrl-C) ends `chalice local`
through click, which prints "Aborted!" and exits 1, so make adds an error of
its own. Here a stop is what it is: one line, and the status of a clean end.

    python -m chalicelib.ops.serve --host 127.0.0.1 --port 8000 ...   (chalice local's options)
"""

import os
import sys


def main(argv: list[str]) -> int:
    # Imported here: the maintenance CLI takes interrupted_status() from this module without them.
    import click
    from chalice.cli import cli

    sys.argv = ["chalice", "local", *argv]  # what app.py looks for: `chalice local` (wiring.stop_on_signals)
    from chalice.local import ChaliceRequestHandler

    from chalicelib.api.request_log import quiet_access_log
    from chalicelib.embedded.private import UMASK

    os.umask(UMASK)  # what the server writes is its owner's alone (docs/privacy.md)
    quiet_access_log(ChaliceRequestHandler)  # its access log: route templates, no paths or query strings
    try:
        cli.main(["local", *argv], prog_name="chalice", obj={}, standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("Stopped: the server and its analysis workers have ended.", file=sys.stderr)
        return interrupted_status()
    except click.exceptions.ClickException as e:
        e.show()
        return e.exit_code
    return 0


def interrupted_status() -> int:
    """130, as a shell reports Ctrl-C, when run by hand. Under make, 0: make
    got the same Ctrl-C and ends with it (so its caller still sees the
    interruption); a status of ours would only add make's `Error 130` line."""
    return 0 if os.environ.get("MAKELEVEL") else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
