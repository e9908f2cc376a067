"""Codec stages by kind, each run over a whole batch: bytes->bytes, array->bytes, array->array."""
