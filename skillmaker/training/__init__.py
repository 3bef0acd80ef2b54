"""Training: config-driven Keras models, transfer learning, checkpoints, resume, reproducibility."""
