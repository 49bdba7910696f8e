"""Helpers the test suites share: real servers' worlds, fault proxies and readers.

One module per subject (``chain``, ``oracle``, ``pusher``, ``api``, ``curate``, ``daemon``,
``browser``, ``rpcproxy``, ``tiny_pipeline``, ``deploy``); tests import from them and never
copy a helper.
"""
