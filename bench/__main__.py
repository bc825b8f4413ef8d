"""Entry point for `python -m bench` (guarded: spawned worker processes re-import modules)."""

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
