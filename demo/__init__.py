"""The demo's simulated world: a replayed price series, holders sending transactions, and the
orchestration that runs it beside every dnft daemon (``dnft demo``)."""
