"""The plan phase: prepared codec chains, selections, shard byte ranges, range coalescing."""
