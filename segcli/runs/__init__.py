"""Runs: engines (local, Ray), discovery, run files and the lock, batch, video runs, tracking."""
