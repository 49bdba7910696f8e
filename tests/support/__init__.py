"""Helpers the test suites share: real servers' worlds, fault proxies and readers.

One module per subject; tests import from them (``from tests.support.chain import ...``) and
never copy a helper:

- ``abi``, ``generated_abi``: ABI entries, raw logs, hypothesis-generated events (decoder).
- ``api``, ``curate``, ``regenerator``: `dnft api` and the regenerator's planner and render
  worker over a real database and broker (curate: with /curate and a scripted renderer).
- ``blobs``: what every blob store must do.
- ``browser``: Debian's Chromium through Playwright.
- ``chain``: a deployed sample collection and independent reads of its events.
- ``cli``: config files and `dnft` commands, as a subprocess or in-process.
- ``daemon``: a dnft daemon as a real subprocess (crash tests).
- ``deploy``: the deploy/ checks' paths and metric names.
- ``indexer``: its configuration, an in-process run, and what its stream amounts to.
- ``kafka``: quick consumer settings, a whole-topic reader, an acknowledged producer.
- ``messages``: hand-built messages of each schema.
- ``oracle``: a scripted feed server, a hand-moved clock, runners stepped by the test.
- ``pusher``, ``pushed``: the pusher's inputs and an in-process pusher; what it did.
- ``rpcproxy``: a misbehaving JSON-RPC proxy in front of anvil.
- ``rules``: collection rules built from named traits.
- ``tiny_pipeline``: a tiny Stable Diffusion pipeline built offline.
- ``wait``: polling until a condition holds.
"""
