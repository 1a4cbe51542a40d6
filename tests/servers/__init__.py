"""Real protocol peers on loopback for testing network plugins.

Each server binds 127.0.0.1 on an ephemeral port, runs in a background
thread, keeps a log of what it received, and stops by itself when its
context manager (or pytest fixture, see ``fixtures``) exits:

- ``obs.ObsWebSocketServer``: obs-websocket v5 (RPC version 1) over WebSocket;
  what its OBS holds and answers is ``obs_state.ObsState``.
- ``hue.HueBridge``: the Philips Hue bridge REST API, version 1 (plain HTTP).
- ``webhook.WebhookServer``: a recording HTTP receiver with redirects.
- ``hostile.DripHTTPServer`` / ``hostile.SilentWebSocketServer``: peers that
  hold a client as long as they can (an answer dripped a byte at a time; a
  close never answered), for the deadline tests.
- ``dns.DNSServer``: a UDP DNS server with the test's records, silent for
  chosen names (used through the real resolver in tests/netns.py).
"""
