"""central room."""
