"""Ingest: raw files from the DAQ directory to the farm storage, verified, recorded (see docs/ingest.md)."""
