"""The io phase: store fetches into one slab per wave."""
