"""The chain sync engine: historical backfill and realtime following with reorg handling.

It knows blocks, hashes and logs, never what users do with events.
"""
