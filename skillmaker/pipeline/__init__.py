"""The pipeline: the local runner, the run lock, push-triggered runs and the demo."""
