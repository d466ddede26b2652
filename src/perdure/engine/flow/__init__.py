"""Flow control, pure: the options (:mod:`.options`), the per-run keys (:mod:`.keys`) and the
decisions (GCRA for throttle and rate limit in :mod:`.gcra`, and the rest beside it). No I/O:
the stores read the state these functions need, call them, and write what they decide."""
