"""Load generator that compares SFUs on the same pre-encoded load.

``python -m bench.sfuload`` runs N publishers and S subscribers against this
server, Janus VideoRoom and this server's transcoding baseline, and prints the
server's CPU per forwarded stream, delivered frame rates, loss, latency, a late
joiner's time to its first keyframe and the server's memory. See
bench/README.md.
"""
