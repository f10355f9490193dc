"""Waiting, in one place: what a sensor, a trigger or an operator waits for, and what it means.

- :mod:`.clock`: the time source and sleeps every wait uses (tests replace them);
- :mod:`.runs`: waiting for a deployment run (the decision, the looks, the schedule-aware next look);
- :mod:`.outcome`: the verdicts as trigger events and back, so every mode raises the same error.

The sensor (poke and reschedule modes) and the trigger (deferrable mode) only do the I/O and
the Airflow plumbing; nothing else decides.
"""
