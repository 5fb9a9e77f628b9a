"""python3 -m sagesvc run FILE | replica ... : hosting Python services."""
import sys

USAGE = """\
usage: python3 -m sagesvc COMMAND [ARGS]

commands:
    run [CONFIG.yaml]   host the Python services of a configuration (see run --help)
    replica ...         serve one replica of a deployed Python service (started by
                        `sagesvc host`; see replica --help)

The benchmark is python3 -m sagesvc.bench; the rest (call, ls, status, deploy)
is the sagesvc command's.
"""


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        from . import _run
        return _run.main(rest)
    if cmd == "replica":
        from . import _replica
        return _replica.main(rest)
    print(f"python3 -m sagesvc: unknown command '{cmd}' (run or replica)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
