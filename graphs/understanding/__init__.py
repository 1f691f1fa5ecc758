"""Understanding people: what each message is (``acts``), read by trained heads over the
turn's embedding plus a few rules (``reader``), with a safety gate first (``safety``).
The corpus it learns from and is measured on is in ``corpus/`` (see its README);
``train`` and ``evaluate`` retrain and measure it."""
