"""Generated laser.v1 messages and gRPC stubs (client/python/gen_stubs.py; do not edit)."""
