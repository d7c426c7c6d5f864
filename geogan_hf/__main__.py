"""``python -m geogan_hf SOURCE EXEMPLAR -o OUT.png ...``: the ``geogan-transfer`` command."""

from geogan_hf.cli import transfer_main

if __name__ == "__main__":
    raise SystemExit(transfer_main())
