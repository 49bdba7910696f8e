"""Oracle feeds: external data (HTTP JSON, Chainlink aggregators, medians) into Kafka.

``dnft oracle`` reads each configured feed on its schedule, refuses bad readings with a
reason (:mod:`oracle_feeds.validate`), decides when to publish (:mod:`oracle_feeds.policy`:
deviation and heartbeat) and publishes ``dnft.oracle.observation.v1`` messages keyed by feed
id, recording the last published round in Postgres (:mod:`oracle_feeds.store`).
:mod:`oracle_feeds.runtime` wires them together.

This package imports nothing at import time: ``dnft.config`` uses :mod:`dnft.jsonpath`
to check feed paths while settings load.
"""
