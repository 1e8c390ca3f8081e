"""Feature views, one module per entity."""
