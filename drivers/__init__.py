"""drivers room."""
