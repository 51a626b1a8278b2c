"""`python -m orchestration.lineage.cli status|flush`: see or deliver spooled OpenLineage events."""

import sys

from orchestration.lineage.client import delivery

FLUSH_LOCK_WAIT_S = 60.0


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:] or ["status"])[0]
    target = delivery()
    if command == "status":
        print(f"{len(target.spool)} event(s) waiting in {target.spool.path}")
        return 0
    if command == "flush":
        sent, pending = target.deliver_pending(wait_for_lock_s=FLUSH_LOCK_WAIT_S)
        print(f"delivered {sent} event(s); {pending} still waiting in {target.spool.path}")
        if pending and target.last_error:
            print(f"not delivered: {target.last_error}", file=sys.stderr)
        return 0 if pending == 0 else 1
    print("usage: python -m orchestration.lineage.cli [status|flush]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
