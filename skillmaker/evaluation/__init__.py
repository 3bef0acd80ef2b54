"""The test harness: metrics, model servers started for a test, Grad-CAM, ``metrics.json``."""
