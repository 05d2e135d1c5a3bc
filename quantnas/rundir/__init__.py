"""The run folder: atomic files, the lock, the manifest, logs, metric rows."""
